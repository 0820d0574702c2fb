"""Authlib's extension points run on every authorization response: a hook registered on the
server and one registered on the authorization-code grant both see /authorize and /refresh,
codes and errors alike (decisions are answered by Authlib's create_authorization_response)."""
from __future__ import annotations

from authserver.oauth.grants import AuthorizationCodeGrant
from authserver.oauth.server import current_server
from support import pkce_pair, query_of

REDIRECT_URI = "http://127.0.0.1:9999/callback"


def test_server_and_grant_hooks_run_on_authorize_and_refresh(app, client, signed_in):
    seen = []
    with app.app_context():
        server = current_server()
        server.register_hook("after_create_authorization_response",
                             lambda srv, resp: seen.append(("server", resp.status_code)))
        for grant_cls, extensions in server._authorization_grants:
            if grant_cls is AuthorizationCodeGrant:
                extensions.append(lambda grant: grant.register_hook(
                    "after_authorization_response",
                    lambda g, resp: seen.append(("grant", resp.status_code))))
    common = {"client_id": signed_in[0], "redirect_uri": REDIRECT_URI, "state": "s",
              "code_challenge": pkce_pair()[1], "code_challenge_method": "S256"}
    answers = [
        client.get("/authorize", query_string={**common, "response_type": "code",
                                               "scope": "openid"}),
        client.get("/refresh", query_string=common),
        client.get("/authorize", query_string={**common, "response_type": "code",
                                               "scope": "openid", "prompt": "none",
                                               "code_challenge_method": "plain"}),
    ]
    assert [("code" in query_of(r.headers["Location"])) for r in answers] == [True, True, False]
    assert seen.count(("server", 302)) == 3
    assert seen.count(("grant", 302)) == 2  # the error is answered by a Refusal, not the grant
