"""One answer to "is this token alive" (SPEC section 8, issue #10 findings 5, 9, 10, 12):
/token, /userinfo, /introspect and the admin API agree, through HTTP as an app would call them.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from authserver.accounts.models import User
from authserver.extensions import db
from support import csrf_from, make_client, make_user, query_of

REDIRECT_URI = "http://127.0.0.1:9999/callback"
LOGOUT_URI = "http://127.0.0.1:9999/signed-out"


def admin_api(app, client):
    """A client_credentials token of an admin tool, and a function calling the admin API."""
    cid, secret = make_client(app, "Admin tool", redirect_uris=(),
                              grant_types=["client_credentials"], scope="admin")
    resp = client.post("/token", data={"grant_type": "client_credentials", "scope": "admin"},
                       auth=(cid, secret))
    token = resp.get_json()["access_token"]
    return lambda method, path: client.open(path, method=method,
                                            headers={"Authorization": f"Bearer {token}"})


def user_id(app, username="alice") -> int:
    with app.app_context():
        return db.session.scalar(select(User.id).where(User.username == username))


def refresh(client, rp, refresh_token):
    return client.post("/token", data={"grant_type": "refresh_token",
                                       "refresh_token": refresh_token}, auth=rp)


def userinfo(client, access_token):
    return client.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})


def introspect(client, rp, token) -> dict:
    resp = client.post("/introspect", data={"token": token}, auth=rp)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


@pytest.fixture
def rp(app):
    make_user(app)
    return make_client(app, post_logout_redirect_uris=[LOGOUT_URI])


@pytest.fixture
def tokens(auth, rp):
    assert auth.login().status_code == 303
    resp = auth.code_flow(*rp)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def assert_alive(client, rp, tokens):
    assert introspect(client, rp, tokens["access_token"])["active"] is True
    assert introspect(client, rp, tokens["refresh_token"])["active"] is True
    assert userinfo(client, tokens["access_token"]).status_code == 200


def assert_dead_everywhere(client, rp, tokens):
    """The server refuses both tokens, and introspection says so (finding 9)."""
    assert introspect(client, rp, tokens["access_token"]) == {"active": False}
    assert introspect(client, rp, tokens["refresh_token"]) == {"active": False}
    resp = userinfo(client, tokens["access_token"])
    assert resp.status_code == 401 and 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    resp = refresh(client, rp, tokens["refresh_token"])
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"


# --- finding 9: introspection agrees with the server --------------------------------------

def test_introspection_says_inactive_after_disable(app, client, rp, tokens):
    assert_alive(client, rp, tokens)
    api = admin_api(app, client)
    assert api("POST", f"/api/admin/users/{user_id(app)}/disable").status_code == 200
    assert_dead_everywhere(client, rp, tokens)


def test_introspection_says_inactive_when_the_state_changed_without_ending_sessions(
        app, client, rp, tokens):
    """A user who is not `active` has no live token, whatever path set the state."""
    with app.app_context():
        db.session.get(User, user_id(app)).state = "reset_required"
        db.session.commit()
    assert_dead_everywhere(client, rp, tokens)


def test_introspection_says_inactive_after_sign_out_everywhere(client, rp, tokens):
    token = csrf_from(client.get("/account").get_data(as_text=True))
    resp = client.post("/account/sessions/revoke", data={"csrf_token": token})
    assert resp.status_code == 303
    assert_dead_everywhere(client, rp, tokens)


def test_access_token_dies_with_its_browser_session_at_logout(client, rp, tokens):
    token = csrf_from(client.get("/logout").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code in (200, 302, 303)
    assert_dead_everywhere(client, rp, tokens)


def test_a_refreshed_access_token_keeps_its_session(client, rp, tokens):
    fresh = refresh(client, rp, tokens["refresh_token"]).get_json()
    assert introspect(client, rp, fresh["access_token"])["active"] is True
    assert introspect(client, rp, tokens["refresh_token"]) == {"active": False}  # rotated
    client.post("/logout", data={"csrf_token": csrf_from(client.get("/logout").get_data(
        as_text=True))})
    assert introspect(client, rp, fresh["access_token"]) == {"active": False}
    assert userinfo(client, fresh["access_token"]).status_code == 401


def test_introspection_of_an_expired_family_is_inactive(frozen, client, rp, tokens):
    frozen.tick(timedelta(days=31))
    assert introspect(client, rp, tokens["refresh_token"]) == {"active": False}


# --- finding 5: licences at every refresh and at /userinfo ----------------------------------

@pytest.fixture
def licensed(app, client, auth):
    """alice, holding the licence of an app that requires one, with that app's tokens."""
    make_user(app)
    rp = make_client(app, "Licensed app", requires_licence=True)
    api = admin_api(app, client)
    assert api("PUT", f"/api/admin/users/{user_id(app)}/licences/{rp[0]}").status_code == 204
    auth.login()
    resp = auth.code_flow(*rp)
    assert resp.status_code == 200, resp.get_json()
    return rp, resp.get_json(), api


def test_removing_a_licence_stops_the_refresh_token_at_its_next_use(app, client, licensed):
    rp, tokens, api = licensed
    tokens = {**tokens, **refresh(client, rp, tokens["refresh_token"]).get_json()}
    assert api("DELETE", f"/api/admin/users/{user_id(app)}/licences/{rp[0]}").status_code == 204
    resp = refresh(client, rp, tokens["refresh_token"])
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"
    assert userinfo(client, tokens["access_token"]).status_code == 401
    assert introspect(client, rp, tokens["access_token"]) == {"active": False}


def test_giving_the_licence_back_revives_nothing_already_refused(app, client, licensed):
    """A refused refresh is not reuse: with the licence back, the same token works again."""
    rp, tokens, api = licensed
    path = f"/api/admin/users/{user_id(app)}/licences/{rp[0]}"
    assert api("DELETE", path).status_code == 204
    assert refresh(client, rp, tokens["refresh_token"]).status_code == 400
    assert api("PUT", path).status_code == 204
    assert refresh(client, rp, tokens["refresh_token"]).status_code == 200


# --- finding 12: a replayed code also revokes the access token issued from it --------------

def test_replayed_code_revokes_the_access_token_issued_from_it(client, auth, rp):
    auth.login()
    resp, verifier, _ = auth.authorize(rp[0])
    code = query_of(resp.headers["Location"])["code"]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier}
    first = client.post("/token", data=data, auth=rp)
    assert first.status_code == 200
    tokens = first.get_json()
    assert userinfo(client, tokens["access_token"]).status_code == 200
    replay = client.post("/token", data=data, auth=rp)
    assert replay.status_code == 400 and replay.get_json()["error"] == "invalid_grant"
    assert_dead_everywhere(client, rp, tokens)


# --- finding 10: only an ID token for that client is an id_token_hint ----------------------

def test_an_access_token_is_not_an_id_token_hint(client, rp, tokens):
    """A resource server holding the user's access token cannot sign the user out."""
    resp = client.get("/logout", query_string={"id_token_hint": tokens["access_token"],
                                               "post_logout_redirect_uri": LOGOUT_URI})
    assert resp.status_code == 400 and "Location" not in resp.headers
    assert refresh(client, rp, tokens["refresh_token"]).status_code == 200


def test_an_id_token_for_another_client_is_refused(app, client, rp, tokens):
    other = make_client(app, "Other", post_logout_redirect_uris=[LOGOUT_URI])
    resp = client.get("/logout", query_string={"id_token_hint": tokens["id_token"],
                                               "client_id": other[0],
                                               "post_logout_redirect_uri": LOGOUT_URI})
    assert resp.status_code == 400 and "Location" not in resp.headers
    assert refresh(client, rp, tokens["refresh_token"]).status_code == 200


def test_an_expired_id_token_is_still_a_hint(frozen, client, rp, tokens):
    frozen.tick(timedelta(hours=2))
    resp = client.get("/logout", query_string={"id_token_hint": tokens["id_token"],
                                               "post_logout_redirect_uri": LOGOUT_URI,
                                               "state": "s1"})
    assert resp.status_code == 302 and resp.headers["Location"] == LOGOUT_URI + "?state=s1"


@pytest.mark.parametrize("hint", ["", "x" * 9000, "a.b.c", "eyJhbGciOiJub25lIn0.e30.",
                                  "%00", "[]"])
def test_a_malformed_hint_is_a_clear_page_not_a_500(client, rp, tokens, hint):
    resp = client.get("/logout", query_string={"id_token_hint": hint,
                                               "post_logout_redirect_uri": LOGOUT_URI})
    assert resp.status_code in (200, 400)


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Basic abc", "Bearer a.b.c",
                                    "Bearer " + "x" * 9000, "Bearer x y"])
def test_bad_bearer_headers_are_401_not_500(client, header):
    resp = client.get("/userinfo", headers={"Authorization": header})
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer ")
    assert client.get("/api/admin/users", headers={"Authorization": header}).status_code == 401


def test_userinfo_accepts_the_form_body_token(client, rp, tokens):
    resp = client.post("/userinfo", data={"access_token": tokens["access_token"]})
    assert resp.status_code == 200 and resp.get_json()["preferred_username"] == "alice"
