"""OpenID Connect RP-Initiated Logout 1.0: id_token_hint and post_logout_redirect_uri checks."""
from __future__ import annotations

from authlib.common.urls import add_params_to_uri
from flask import current_app
from joserfc import jwt
from joserfc.errors import JoseError

from .. import clock
from ..accounts.models import BrowserSession
from ..audit import security_event
from ..errors import AuthserverError
from ..extensions import db
from ..tokens import keyring
from ..tokens import services as tokens
from ..tokens.jwt_access import ALGORITHMS
from . import services


HINT_INVALID = "The id_token_hint is not valid."


class LogoutRejected(AuthserverError):
    pass


def log_out(bs: BrowserSession | None) -> None:
    """End this browser's session at the issuer (its refresh tokens die with it)."""
    if bs is None:
        return
    tokens.revoke_session(bs)
    security_event("logout", user_id=bs.user_id)
    db.session.commit()


# Header types of the other JWTs this issuer signs: RFC 9068 access tokens and back-channel
# logout tokens. An ID token carries "JWT" or no typ (OIDC Core 1.0 section 2).
NOT_ID_TOKEN_TYPES = ("at+jwt", "application/at+jwt", "logout+jwt", "application/logout+jwt")


def _hint_claims(id_token_hint: str) -> dict:
    """The claims of an ID token this issuer signed, or LogoutRejected.

    Section 2: only an ID token is a hint, so an access token (which a resource server
    holds) cannot sign a user out; an expired ID token is still a valid hint.
    """
    if not isinstance(id_token_hint, str) or len(id_token_hint) > 8192:
        raise LogoutRejected(HINT_INVALID)
    keys = keyring.current_keyring().verification_keyset(clock.now())
    try:
        decoded = jwt.decode(id_token_hint, keys, algorithms=ALGORITHMS)
    except (JoseError, ValueError, TypeError) as exc:
        raise LogoutRejected(HINT_INVALID) from exc
    claims = decoded.claims
    if str(decoded.header.get("typ") or "JWT").lower() in NOT_ID_TOKEN_TYPES \
            or "events" in claims or "scope" in claims \
            or claims.get("iss") != current_app.config["ISSUER"] \
            or not isinstance(claims.get("sub"), str) or not _audience(claims):
        raise LogoutRejected(HINT_INVALID)
    return claims


def _audience(claims: dict) -> list[str]:
    aud = claims.get("aud")
    aud = [aud] if isinstance(aud, str) else aud
    if not isinstance(aud, list) or not all(isinstance(a, str) for a in aud):
        return []
    return aud


def validate_logout(id_token_hint: str | None, client_id: str | None,
                    post_logout_redirect_uri: str | None, state: str | None,
                    session_sub: str | None = None) -> tuple[str | None, bool]:
    """Return (where to go after sign-out, whether the hint lets us skip the question).

    Section 2: the question is a MUST when the hint names someone other than the signed-in
    user (session_sub), so a link with another person's ID token cannot sign this one out.
    """
    claims = _hint_claims(id_token_hint) if id_token_hint else {}
    vouches = bool(claims) and (session_sub is None or claims.get("sub") == session_sub)
    audience = _audience(claims) if claims else []
    if client_id and audience and client_id not in audience:
        raise LogoutRejected("The client_id does not match the id_token_hint.")
    client = services.query_client(client_id or (audience[0] if audience else None))
    if claims and client is None:
        raise LogoutRejected(HINT_INVALID)  # an ID token for a client we do not know
    if not post_logout_redirect_uri:
        return None, vouches
    if client is None or post_logout_redirect_uri not in client.post_logout_redirect_uris:
        raise LogoutRejected("The post_logout_redirect_uri is not registered for this "
                             "application.")
    target = post_logout_redirect_uri
    if state:
        target = add_params_to_uri(target, [("state", state)])
    return target, vouches
