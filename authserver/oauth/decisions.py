"""An authorization request (RFC 6749 section 4.1.1, OIDC Core 3.1.2) turned into a decision.

`/authorize` and `/refresh` each call one function here with the browser's session; it
returns what should happen, and nothing has been answered yet: the loop guard reads the
decision (loop_guard.inspect), then the view renders it (responses.render). Codes and every
error sent back to the app are answered by Authlib's `create_authorization_response`, so the
server's hooks (RFC 9207 `iss`) and the grant's hooks run on every path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749.errors import AccessDeniedError
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from flask import request, url_for

from .. import clock, security
from ..accounts.models import BrowserSession, User
from ..accounts.states import can_use_tokens
from . import services
from .grants import new_authorization_code
from .models import Client
from .server import current_server

# Parameters that change on every round trip of one loop (SPEC section 7).
VOLATILE = frozenset({"state", "nonce", "code_challenge"})


@dataclass
class IssueCode:
    """Redirect with a code. `code` is drawn now so the loop guard can follow it to /token."""
    grant: object
    user: User
    session: BrowserSession
    client_id: str
    code: str = field(default_factory=new_authorization_code)
    user_step: bool = False  # the user just answered a page here (consent): counts start afresh

    @property
    def code_hash(self) -> str:
        return security.keyed_hash(self.code, "authz_code")


@dataclass
class ErrorRedirect:
    """An RFC 6749 section 4.1.2.1 error sent back to a validated redirect URI."""
    oauth_request: OAuth2Request
    error: OAuth2Error
    client_id: str


@dataclass
class AskConsent:
    grant: object
    user: User
    client: Client


@dataclass
class ToSignIn:
    """The login page (or the step the account needs), then back to `next_url`."""
    next_url: str
    login_hint: str = ""


@dataclass
class NoLicence:
    user: User
    client: Client


@dataclass
class ErrorPage:
    title: str
    message: str
    status: int = 400


@dataclass
class LoopPage:
    client_id: str | None
    reason: str = "too_many_round_trips"
    cookies_blocked: bool = False


Decision = IssueCode | ErrorRedirect | AskConsent | ToSignIn | NoLicence | ErrorPage | LoopPage
SILENT = (IssueCode, ErrorRedirect)


def is_silent(decision: Decision) -> bool:
    """A silent round trip sends the browser straight back to the app, showing no page."""
    return isinstance(decision, SILENT)


def decide_authorize(bs: BrowserSession | None, consent: bool | None = None,
                     params: dict | None = None) -> Decision:
    """The request in the URL (or `params`, from /refresh), for the browser session `bs`.

    `consent` is the user's answer on the consent page (None: not asked yet).
    """
    server = current_server()
    oauth_req = server.create_oauth2_request(params if params is not None else request)
    try:
        oauth_req.user = bs.user if bs else None
        grant = server.get_authorization_grant(oauth_req)
        grant.validate_no_multiple_request_parameter(oauth_req)
        grant.validate_consent_request()
    except OAuth2Error as error:
        error.state = oauth_req.payload.state
        return _refused(oauth_req, error)
    data = oauth_req.payload.data
    prompts = (data.get("prompt") or "").split()
    client = oauth_req.client
    if bs is None or "login" in prompts or _too_old(bs, data.get("max_age")):
        if "none" in prompts:
            return _refused(oauth_req, LoginRequiredError(redirect_uri=grant.redirect_uri))
        return _to_sign_in(params)
    if not services.has_licence(bs.user, client):
        services.refuse_without_licence(bs.user, client)
        if "none" in prompts:
            return _refused(oauth_req, AccessDeniedError(redirect_uri=grant.redirect_uri))
        return NoLicence(bs.user, client)
    if consent is None and ("consent" in prompts
                            or services.needs_consent(bs.user, client, oauth_req.scope)):
        if "none" in prompts:
            return _refused(oauth_req, ConsentRequiredError(redirect_uri=grant.redirect_uri))
        return AskConsent(grant, bs.user, client)
    if consent is False:
        return _refused(oauth_req, AccessDeniedError(redirect_uri=grant.redirect_uri))
    if consent:
        services.grant_consent(bs.user, client, oauth_req.scope)
    return IssueCode(grant, bs.user, bs, client.client_id, user_step=bool(consent))


def decide_refresh(bs: BrowserSession | None, args) -> Decision:
    """/refresh: an authorization request with the client's defaults (SPEC section 2).

    The redirect URI is checked before anything else, so a bad link never redirects. A
    browser session whose account can no longer use tokens (a state set without ending its
    sessions) goes through the login page, which shows the page for that state.
    """
    client = services.query_client_cached(args.get("client_id"))
    if client is None:
        return ErrorPage("Unknown application", "This sign-in link names an application that "
                         "is not registered here.")
    redirect_uri = args.get("redirect_uri")
    if not redirect_uri or not client.check_redirect_uri(redirect_uri):
        return ErrorPage("Sign-in link not valid", "The return address in this link is not "
                         "registered for this application, so we will not send you there.")
    params = {"response_type": "code", "client_id": client.client_id,
              "redirect_uri": redirect_uri, "scope": client.get_allowed_scope(None)}
    for name in ("state", "code_challenge", "code_challenge_method", "nonce"):
        if args.get(name):
            params[name] = args.get(name)
    if not args.get("state"):
        services.note_refresh_without_state(client)
    if bs is not None and not can_use_tokens(bs.user):
        return _to_sign_in(params)
    return decide_authorize(bs, params=params)


def request_shape(args) -> str:
    """What makes two requests "the same request" for the loop guard: the endpoint and every
    parameter but those that change on each trip (state, nonce, code_challenge)."""
    items = sorted((k, v) for k, v in args.items(multi=True) if k not in VOLATILE)
    return security.keyed_hash(request.path + "?" + urlencode(items), "loop-shape")[:24]


def _refused(oauth_req: OAuth2Request, error: OAuth2Error) -> Decision:
    """Redirect the error when Authlib validated the redirect URI; otherwise show a page."""
    if error.redirect_uri:
        return ErrorRedirect(oauth_req, error, oauth_req.payload.client_id or "")
    message = error.get_error_description() or error.description or error.error
    # Authlib says "Redirect URI ... is not supported by client."
    if "redirect uri" in message.lower():
        message = ("The return address in this link is not registered for this application, "
                   "so we will not send you there. (Its address must match a registered "
                   "redirect URI exactly: 127.0.0.1 and localhost are different.)")
    return ErrorPage("This sign-in request is not valid", message)


def _too_old(bs: BrowserSession, max_age) -> bool:
    if max_age in (None, ""):
        return False
    try:
        limit = int(max_age)
    except (TypeError, ValueError):
        return False
    return clock.now().timestamp() - bs.auth_time.timestamp() > max(limit, 0)


def _to_sign_in(params: dict | None) -> ToSignIn:
    """To /login, coming back here without prompt=login or max_age: the sign-in satisfies
    both, and max_age=0 would otherwise send the user back forever."""
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
    return ToSignIn(target, request.args.get("login_hint", ""))
