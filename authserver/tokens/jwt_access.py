"""RFC 9068 JWT access tokens: signing, and validation of our own tokens."""
from __future__ import annotations

from flask import current_app
from joserfc import jwt
from joserfc.errors import JoseError

from .. import clock, security
from . import keyring
from .lifetimes import access_token_ttl

ALGORITHMS = ["RS256", "ES256"]


class AccessTokenGenerator:
    """Authlib token generator (the server's "default"): a signed at+jwt plus an opaque refresh token.

    Authlib passes user=None for client_credentials; the token's sub is then the client id
    (RFC 9068 section 2.2).
    """

    def __call__(self, grant_type, client, user=None, scope=None, expires_in=None,
                 include_refresh_token=True, extra_claims=None):
        expires_in = expires_in or access_token_ttl(client, grant_type)
        if scope:
            # RFC 6749 section 3.3: never more than the client is registered for. Authlib's
            # BearerTokenGenerator does this; client_credentials passes the raw request scope.
            scope = client.get_allowed_scope(scope)
        token = {
            "token_type": "Bearer",
            "access_token": sign_access_token(client.get_client_id(), user, scope or "",
                                              expires_in, extra_claims or {}),
            "expires_in": expires_in,
        }
        if scope:
            token["scope"] = scope
        if include_refresh_token:
            token["refresh_token"] = security.random_token(32)
        return token


def sign_access_token(client_id: str, user, scope: str, expires_in: int, extra: dict) -> str:
    """Sign the JWT with the current key for ACCESS_TOKEN_ALG (RFC 9068 section 2)."""
    now = clock.timestamp()
    alg = current_app.config["ACCESS_TOKEN_ALG"]
    key = keyring.current_keyring().signing_key(alg, clock.now())
    claims = {
        "iss": current_app.config["ISSUER"],
        "sub": user.get_user_id() if user else client_id,
        "aud": client_id,
        "client_id": client_id,
        "iat": now,
        "exp": now + int(expires_in),
        "jti": security.random_token(16),
        "scope": scope,
        **extra,
    }
    return jwt.encode({"alg": alg, "typ": "at+jwt", "kid": key.kid}, claims, key, algorithms=[alg])


class AccessTokenInvalid(Exception):
    pass


def decode_access_token(token: str) -> dict:
    """Verify signature, typ, issuer and expiry of one of our access tokens; return its claims."""
    if not token or len(token) > 8192:
        raise AccessTokenInvalid("missing or oversized token")
    keys = keyring.current_keyring().verification_keyset(clock.now())
    try:
        decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
    except (JoseError, ValueError, TypeError) as exc:
        raise AccessTokenInvalid("bad token") from exc
    if str(decoded.header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
        raise AccessTokenInvalid("not an access token")
    claims = decoded.claims
    if claims.get("iss") != current_app.config["ISSUER"]:
        raise AccessTokenInvalid("wrong issuer")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= clock.timestamp():
        raise AccessTokenInvalid("expired")
    return claims
