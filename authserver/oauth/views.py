"""bp "oauth": /authorize, /refresh, /token, /userinfo, /revoke, /introspect, /logout."""
from __future__ import annotations

from authlib.oauth2 import OAuth2Error
from flask import Blueprint, jsonify, redirect, render_template, request

from ..accounts import login_flow
from . import bearer, decisions, loop_guard, responses
from .claims import userinfo_for
from .forms import ConsentForm, LogoutForm
from .logout import LogoutRejected, log_out, validate_logout
from .server import current_server

bp = Blueprint("oauth", __name__)


@bp.route("/authorize", methods=["GET", "POST"])
def authorize():
    """RFC 6749 section 4.1.1 with OIDC prompt/max_age; POST is the consent form."""
    consent = None
    if request.method == "POST":
        form = ConsentForm()
        if not form.validate_on_submit():
            return responses.form_expired()
        consent = form.decision()
    bs = login_flow.current_session()
    decision = decisions.decide_authorize(bs, consent)
    return responses.render(loop_guard.inspect(decision, bs))


@bp.get("/refresh")
def refresh():
    """Story 3: straight back to the app with a fresh code while the session lives."""
    bs = login_flow.current_session()
    decision = decisions.decide_refresh(bs, request.args)
    return responses.render(loop_guard.inspect(decision, bs))


@bp.post("/token")
def token():
    """RFC 6749 section 3.2; its limits are oauth/client_limits.py's (no Flask-Limiter)."""
    return current_server().create_token_response()


@bp.post("/revoke")
def revoke():
    return current_server().create_endpoint_response("revocation")


@bp.post("/introspect")
def introspect():
    return current_server().create_endpoint_response("introspection")


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo():
    """OIDC Core 1.0 section 5.3: a live access token (oauth.bearer) with scope openid, in
    the header (RFC 6750 section 2.1) or the form body (section 2.2)."""
    try:
        token = bearer.verify_bearer(request, ["openid"], form_token=True)
    except OAuth2Error as exc:
        return _bearer_error(*bearer.rejection(exc))
    if token.user is None:  # a client's own token (client_credentials) has no user
        return _bearer_error("invalid_token")
    resp = jsonify(dict(userinfo_for(token.user, token.get_scope())))
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _bearer_error(error: str | None, status: int = 401):
    header = 'Bearer realm="authserver"'
    body = {}
    if error:
        header += f', error="{error}"'
        body = {"error": error, "error_description": {
            "invalid_token": "The access token is invalid, expired or revoked.",
            "insufficient_scope": "The access token lacks the openid scope."}[error]}
    resp = jsonify(body)
    resp.status_code = status
    resp.headers["WWW-Authenticate"] = header
    return resp


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """OpenID Connect RP-Initiated Logout 1.0: no question when the hint vouches for the app."""
    values = request.values
    bs = login_flow.current_session()
    try:
        target, hinted = validate_logout(values.get("id_token_hint"), values.get("client_id"),
                                         values.get("post_logout_redirect_uri"),
                                         values.get("state"), bs.user.sub if bs else None)
    except LogoutRejected as exc:
        return responses.error_page("Sign-out failed", exc.message)
    form = LogoutForm()
    if request.method == "GET" and not (hinted and target):
        return render_template("oauth/logout.html", form=form)
    if request.method == "POST" and not form.validate_on_submit():
        return responses.form_expired()
    log_out(bs)
    login_flow.sign_out()
    return redirect(target) if target else render_template("oauth/logged_out.html")
