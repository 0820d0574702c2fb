"""RFC 9068 JWT access tokens: signing, and validation of our own tokens."""
from __future__ import annotations

import base64
import json
from typing import NamedTuple

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from flask import current_app
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from .. import clock, security
from . import keyring
from .lifetimes import access_token_ttl

ALGORITHMS = ["RS256", "ES256"]


class AccessTokenGenerator:
    """Authlib token generator (the server's "default"): a signed at+jwt and an opaque refresh
    token.

    Authlib passes user=None for client_credentials; the token's sub is then the client id
    (RFC 9068 section 2.2).
    """

    def __call__(self, grant_type, client, user=None, scope=None, expires_in=None,
                 include_refresh_token=True, extra_claims=None, refresh_token=None):
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
            token["refresh_token"] = refresh_token or security.random_token(32)
        return token


ACCESS_TOKENS = AccessTokenGenerator()


def sign_access_token(client_id: str, user, scope: str, expires_in: int, extra: dict) -> str:
    """Sign the JWT with the current key for ACCESS_TOKEN_ALG (RFC 9068 section 2)."""
    now = clock.timestamp()
    config = current_app.config
    alg = config["ACCESS_TOKEN_ALG"]
    key = keyring.current_keyring().signing_key(alg, clock.now())
    claims = {
        "iss": config["ISSUER"],
        "sub": user.get_user_id() if user else client_id,
        "aud": client_id,
        "client_id": client_id,
        "iat": now,
        "exp": now + int(expires_in),
        "jti": security.random_token(16),
        "scope": scope,
        **extra,
    }
    return sign_compact(alg, key, "at+jwt", claims)


class _Signer(NamedTuple):
    key: RSAKey | ECKey
    prefix: bytes  # base64url(header) + "."
    sign: object  # bytes -> raw JWS signature


_SIGNERS: dict[tuple[int, str, str], _Signer] = {}


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _signer(alg: str, key: RSAKey | ECKey, typ: str) -> _Signer:
    """The JOSE header encoded once per key and typ, and the key's native signing call."""
    signer = _SIGNERS.get((id(key), alg, typ))
    if signer is None or signer.key is not key:
        header = json.dumps({"alg": alg, "typ": typ, "kid": key.kid}, separators=(",", ":"))
        native = key.private_key
        if alg == "RS256":
            def sign(msg: bytes) -> bytes:
                return native.sign(msg, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "ES256":
            def sign(msg: bytes) -> bytes:
                r, s = decode_dss_signature(native.sign(msg, ec.ECDSA(hashes.SHA256())))
                return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:
            raise ValueError(f"unsupported alg {alg}")
        if len(_SIGNERS) >= 64:  # keys reloaded many times (tests): drop the old ones
            _SIGNERS.clear()
        signer = _SIGNERS[(id(key), alg, typ)] = _Signer(key, _b64(header.encode()) + b".", sign)
    return signer


def sign_compact(alg: str, key: RSAKey | ECKey, typ: str, claims: dict) -> str:
    """A JWS compact serialization (RFC 7515 section 7.1) of the claims: the same token
    joserfc's jwt.encode makes, from a header encoded once per key (see _signer)."""
    signer = _signer(alg, key, typ)
    signing_input = signer.prefix + _b64(json.dumps(claims, separators=(",", ":")).encode())
    return (signing_input + b"." + _b64(signer.sign(signing_input))).decode("ascii")


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
