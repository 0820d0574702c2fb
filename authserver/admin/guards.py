"""Who may use the Users module (a signed-in admin) and the admin API (a bearer token with
scope `admin`, RFC 6750 section 3.1 for the error answers)."""
from __future__ import annotations

from dataclasses import dataclass

from authlib.oauth2 import OAuth2Error
from flask import abort, flash, g, redirect, request, url_for

from ..accounts import login_flow, signin
from ..accounts.states import AccountState
from ..errors import AuthserverError
from ..oauth.bearer import AccessToken, rejection, verify_bearer

ADMIN_SCOPE = "admin"


@dataclass(frozen=True)
class Principal:
    """Who calls the API: an admin user (user_id) or a client acting for itself (user_id None)."""

    client_id: str
    user_id: int | None = None


class BearerRejected(AuthserverError):
    """401 (no or bad token) or 403 (insufficient scope, not an administrator)."""

    def __init__(self, status: int, message: str, error: str | None = None):
        super().__init__(message)
        self.status = status
        self.error = error

    def www_authenticate(self) -> str:
        header = 'Bearer realm="authserver"'
        if self.error:
            header += f', error="{self.error}"'
        if self.error == "insufficient_scope":
            header += f', scope="{ADMIN_SCOPE}"'
        return header


def require_admin():
    """before_request of the Users module: sign in first, then only role `admin` gets in."""
    user = login_flow.current_user()
    if user is None:
        login_flow.remember_destination("users")  # /account links back after the sign-in
        return redirect(url_for("accounts.login"))
    if not user.is_admin or user.state != AccountState.ACTIVE:
        abort(403, description="This page is for administrators.")
    if signin.mfa_policy_covers(user) and "mfa" not in (login_flow.current_session().amr or []):
        if not user.has_second_step:
            flash("Set up two-step sign-in to use the Users module.", "info")
            return redirect(url_for("accounts.account_mfa"))
        abort(403, description="Sign out and sign in again with your second step to use "
                               "the Users module.")
    g.admin = user
    return None


def require_admin_token(exempt: tuple[str, ...] = ()) -> None:
    """before_request of the admin API: a live access token (oauth.bearer) with scope `admin`.

    A client_credentials token (sub == client_id) needs a confidential client still
    registered with scope `admin`; a user's token needs an active user with role `admin`.
    """
    if request.endpoint in exempt:
        return
    token = _bearer_token()
    client = token.client
    if token.get("sub") == client.client_id:
        if client.public or ADMIN_SCOPE not in client.scope.split():
            raise BearerRejected(403, "This client may not use the admin API.",
                                 "insufficient_scope")
        g.principal = Principal(client_id=client.client_id)
        return
    if not token.user.is_admin:
        raise BearerRejected(403, "Only administrators may use the admin API.")
    if signin.mfa_policy_covers(token.user) and not token.user.has_second_step:
        raise BearerRejected(403, "The MFA policy requires two-step sign-in for this user.")
    g.principal = Principal(client_id=client.client_id, user_id=token.user.id)


def _bearer_token() -> AccessToken:
    try:
        return verify_bearer(request, [ADMIN_SCOPE], fresh_client=True)
    except OAuth2Error as exc:
        error, status = rejection(exc)
        message = {None: "A bearer access token is required.",
                   "invalid_token": "The access token is invalid, expired or revoked.",
                   "insufficient_scope": "The access token lacks the admin scope."}[error]
        raise BearerRejected(status, message, error) from exc
