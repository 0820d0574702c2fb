"""OpenID Connect RP-Initiated Logout 1.0: id_token_hint and post_logout_redirect_uri checks."""
from __future__ import annotations

from authlib.common.urls import add_params_to_uri
from joserfc import jwt
from joserfc.errors import JoseError

from .. import clock
from ..errors import AuthserverError
from ..tokens import keyring
from ..tokens.jwt_access import ALGORITHMS
from . import services


class LogoutRejected(AuthserverError):
    pass


def _hint_claims(id_token_hint: str) -> dict:
    """Verify the hint's signature; an expired ID token is still a valid hint (section 2)."""
    if len(id_token_hint) > 8192:
        raise LogoutRejected("The id_token_hint is not valid.")
    keys = keyring.current_keyring().verification_keyset(clock.now())
    try:
        return jwt.decode(id_token_hint, keys, algorithms=ALGORITHMS).claims
    except (JoseError, ValueError, TypeError) as exc:
        raise LogoutRejected("The id_token_hint is not valid.") from exc


def validate_logout(id_token_hint: str | None, client_id: str | None,
                    post_logout_redirect_uri: str | None, state: str | None,
                    session_sub: str | None = None) -> tuple[str | None, bool]:
    """Return (where to go after sign-out, whether the hint lets us skip the question).

    Section 2: the question is a MUST when the hint names someone other than the signed-in
    user (session_sub), so a link with another person's ID token cannot sign this one out.
    """
    claims = _hint_claims(id_token_hint) if id_token_hint else {}
    vouches = bool(claims) and (session_sub is None or claims.get("sub") == session_sub)
    aud = claims.get("aud")
    hinted = aud[0] if isinstance(aud, list) and aud else aud
    if client_id and hinted and client_id != hinted:
        raise LogoutRejected("The client_id does not match the id_token_hint.")
    client = services.query_client(client_id or hinted)
    if not post_logout_redirect_uri:
        return None, vouches
    if client is None or post_logout_redirect_uri not in client.post_logout_redirect_uris:
        raise LogoutRejected("The post_logout_redirect_uri is not registered for this "
                             "application.")
    target = post_logout_redirect_uri
    if state:
        target = add_params_to_uri(target, [("state", state)])
    return target, vouches
