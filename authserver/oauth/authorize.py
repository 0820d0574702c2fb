"""The authorization request (RFC 6749 section 4.1.1, OIDC Core 3.1.2), shared by /authorize
and /refresh: who is signed in, what they must do first, then Authlib issues the code."""
from __future__ import annotations

from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import AccessDeniedError
from authlib.oauth2.rfc7636.challenge import CODE_CHALLENGE_PATTERN
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from flask import g, redirect, render_template, request, url_for

from .. import clock
from ..accounts import login_flow
from ..accounts.states import can_use_tokens
from ..audit import security_event
from ..extensions import db
from . import services
from .forms import ConsentForm, RestartForm
from .grants import MAX_NONCE, new_authorization_code
from .server import current_server


def authorize_request(params: dict | None, consent: bool | None = None):
    """Validate, make sure the right person is signed in, then redirect with a code."""
    server = current_server()
    bs = login_flow.current_session()
    try:
        grant = server.get_consent_grant(request=params, end_user=bs.user if bs else None)
    except OAuth2Error as error:
        return error_response(error)
    req = grant.request
    prompts = (req.payload.data.get("prompt") or "").split()
    if bs is None or "login" in prompts or _too_old(bs, req.payload.data.get("max_age")):
        if "none" in prompts:
            return redirect_error(grant, LoginRequiredError)
        return _to_login(params)
    user, client = bs.user, req.client
    if not services.has_licence(user, client):
        return _no_licence(grant, user, client, "none" in prompts)
    if consent is None and ("consent" in prompts or
                            services.needs_consent(user, client, req.scope)):
        if "none" in prompts:
            return redirect_error(grant, ConsentRequiredError)
        return render_template("oauth/consent.html", client=client, scopes=req.scope.split(),
                               user=user, form=ConsentForm())
    if consent is False:
        return redirect_error(grant, AccessDeniedError)
    if consent:
        services.grant_consent(user, client, req.scope)
    req.browser_session = bs
    return server.issue_authorization_response(grant, user)


def refresh_request(args):
    """/refresh: an authorization request with the client's defaults (SPEC section 2).

    The redirect URI is checked before anything else, so a bad link never redirects. A
    browser session whose account can no longer use tokens (a state set without ending its
    sessions) goes through the login page, which shows the page for that state.
    """
    client = services.query_client_cached(args.get("client_id"))
    if client is None:
        return error_page("Unknown application", "This sign-in link names an application that "
                          "is not registered here.")
    redirect_uri = args.get("redirect_uri")
    if not redirect_uri or not client.check_redirect_uri(redirect_uri):
        return error_page("Sign-in link not valid", "The return address in this link is not "
                          "registered for this application, so we will not send you there.")
    params = {"response_type": "code", "client_id": client.client_id,
              "redirect_uri": redirect_uri, "scope": client.get_allowed_scope(None)}
    for name in ("state", "code_challenge", "code_challenge_method", "nonce"):
        if args.get(name):
            params[name] = args.get(name)
    if not args.get("state"):
        security_event("refresh_without_state", client_id=client.client_id)
        db.session.commit()
    bs = login_flow.current_session()
    if bs is not None and not can_use_tokens(bs.user):
        return _to_login(params)
    if bs is not None and _everyday_refresh(bs, client, params):
        return _issue_code(bs, client, params)
    return authorize_request(params)


def _everyday_refresh(bs, client, params: dict) -> bool:
    """The request /refresh exists for: a live session, a well-formed S256 challenge, a fresh
    nonce, nothing to ask the user. Its parameters are fixed (the client's scope, no prompt,
    no max_age), so these are all the rules there are; the code is issued directly, without
    Authlib parsing and validating a synthetic authorization request (issue 5: /refresh is
    the hot path of every expired session). Anything else takes the general path, which gives
    the error, the login page or the consent page exactly as /authorize would.
    """
    challenge, nonce = params.get("code_challenge"), params.get("nonce")
    return (client.check_response_type("code")
            and params.get("code_challenge_method") == "S256"
            and bool(challenge and CODE_CHALLENGE_PATTERN.match(challenge))
            and (not nonce or (len(nonce) <= MAX_NONCE
                               and not services.nonce_used(client.client_id, nonce)))
            and services.has_licence(bs.user, client)
            and not services.needs_consent(bs.user, client, params["scope"]))


def _issue_code(bs, client, params: dict):
    """What AuthorizationCodeGrant.create_authorization_response does: save, then 302.

    Authlib's grant-level `after_authorization_response` hooks do not run here; none are
    registered. One added later (say RFC 9207's `iss`) must be added here too."""
    code = new_authorization_code()
    services.save_authorization_code(
        code, client=client, user=bs.user, session=bs, redirect_uri=params["redirect_uri"],
        scope=params["scope"], nonce=params.get("nonce"), challenge=params["code_challenge"],
        method="S256")
    query = [("code", code)] + ([("state", params["state"])] if params.get("state") else [])
    location = add_params_to_uri(params["redirect_uri"], query)
    return current_server().handle_response(302, "", [("Location", location)])


def _too_old(bs, max_age) -> bool:
    if max_age in (None, ""):
        return False
    try:
        limit = int(max_age)
    except (TypeError, ValueError):
        return False
    return clock.now().timestamp() - bs.auth_time.timestamp() > max(limit, 0)


def _to_login(params: dict | None):
    """Send the browser to /login, to come back here without prompt=login or max_age: the
    sign-in satisfies both, and max_age=0 would otherwise send the user back forever."""
    if params is None:
        args = []
        for k, v in request.args.items(multi=True):
            if k == "prompt":
                v = " ".join(p for p in v.split() if p != "login")
            if k != "max_age" and v:
                args.append((k, v))
        target = url_for("oauth.authorize") + "?" + urlencode(args)
    else:
        target = request.full_path
    hint = request.args.get("login_hint", "")
    return redirect(url_for("accounts.login", next=target, **({"login_hint": hint} if hint else {})))


def _no_licence(grant, user, client, silent: bool):
    security_event("no_licence", user_id=user.id, client_id=client.client_id)
    db.session.commit()
    if silent:
        return redirect_error(grant, AccessDeniedError)
    return render_template("accounts/no_licence.html", client=client, user=user)


def redirect_error(grant, error_cls):
    """An RFC 6749 section 4.1.2.1 error sent back to the (validated) redirect URI."""
    error = error_cls(redirect_uri=grant.redirect_uri)
    error.state = grant.request.payload.state
    return current_server().handle_error_response(grant.request, error)


def error_response(error: OAuth2Error):
    """Redirect only when Authlib validated the redirect URI; otherwise show a page."""
    if error.redirect_uri:
        return current_server().handle_error_response(request, error)
    message = error.get_error_description() or error.description or error.error
    return error_page("This sign-in request is not valid", message)


def error_page(title: str, message: str, status: int = 400):
    return render_template("oauth/error.html", title=title, message=message), status


def loop_page(client_id: str | None, *, cookies_blocked: bool = False):
    """SPEC section 7: a page (200, no redirect) that explains and offers a clean sign-in."""
    reason = g.get("loop_reason") or "too_many_round_trips"
    security_event("redirect_loop", client_id=(client_id or "")[:64], reason=reason,
                   cookies=not cookies_blocked)
    db.session.commit()
    client = services.query_client(client_id)
    return render_template("errors/loop.html", client=client, form=RestartForm(),
                           reason=reason, cookies_blocked=cookies_blocked), 200


def form_expired():
    return render_template("errors/400.html", title="This form has expired",
                           message="The form expired or was sent from another page. "
                                   "Go back, reload the page and try again.", status=400), 400


