"""Who may use the Users module (a signed-in admin) and the admin API (a bearer token with
scope `admin`, RFC 6750 section 3.1 for the error answers)."""
from __future__ import annotations

from dataclasses import dataclass

from flask import abort, flash, g, redirect, request, url_for

from ..accounts import login_flow, signin
from ..accounts.states import AccountState
from ..errors import AuthserverError
from ..oauth import services as oauth
from ..tokens import services as tokens
from ..tokens.jwt_access import AccessTokenInvalid, decode_access_token
from . import services

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
    """before_request of the admin API: a valid access token with scope `admin`.

    A client_credentials token (sub == client_id) needs a confidential client still
    registered with scope `admin`; a user's token needs a user with role `admin`.
    """
    if request.endpoint in exempt:
        return
    claims = _bearer_claims()
    if ADMIN_SCOPE not in str(claims.get("scope") or "").split():
        raise BearerRejected(403, "The access token lacks the admin scope.", "insufficient_scope")
    client = oauth.query_client(claims.get("client_id"))
    if client is None:
        raise BearerRejected(401, "The access token's client is not registered.", "invalid_token")
    if claims.get("sub") == client.client_id:
        if client.public or ADMIN_SCOPE not in client.scope.split():
            raise BearerRejected(403, "This client may not use the admin API.",
                                 "insufficient_scope")
        g.principal = Principal(client_id=client.client_id)
        return
    g.principal = Principal(client_id=client.client_id, user_id=_admin_user_id(claims))


def _bearer_claims() -> dict:
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise BearerRejected(401, "A bearer access token is required.")
    try:
        claims = decode_access_token(raw.strip())
    except AccessTokenInvalid as exc:
        raise BearerRejected(401, "The access token is invalid, expired or revoked.",
                             "invalid_token") from exc
    if tokens.is_access_token_revoked(str(claims.get("jti") or "")):
        raise BearerRejected(401, "The access token is invalid, expired or revoked.",
                             "invalid_token")
    return claims


def _admin_user_id(claims: dict) -> int:
    user = services.find_by_sub(claims.get("sub"))
    if user is None or user.state != AccountState.ACTIVE:
        raise BearerRejected(401, "The access token's user cannot use tokens.", "invalid_token")
    if not user.is_admin:
        raise BearerRejected(403, "Only administrators may use the admin API.")
    if signin.mfa_policy_covers(user) and not user.has_second_step:
        raise BearerRejected(403, "The MFA policy requires two-step sign-in for this user.")
    return user.id
