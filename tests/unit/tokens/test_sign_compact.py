"""jwt_access.sign_compact: a token joserfc verifies, with the header it would write."""
from __future__ import annotations

import base64
import json

import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

from authserver.tokens.jwt_access import sign_compact


def segment(token: str, index: int) -> dict:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


@pytest.mark.parametrize("alg, make", [("RS256", lambda: RSAKey.generate_key(2048)),
                                       ("ES256", lambda: ECKey.generate_key("P-256"))])
def test_the_token_verifies_and_carries_the_header_and_claims(alg, make):
    key = make()
    key.ensure_kid()
    claims = {"iss": "https://issuer.example", "sub": "ünïcode", "exp": 2_000_000_000}
    tokens = [sign_compact(alg, key, "at+jwt", claims) for _ in range(2)]  # cached header
    for token in tokens:
        assert "=" not in token
        decoded = jwt.decode(token, KeySet([key]), algorithms=[alg])
        assert decoded.claims == claims
        assert segment(token, 0) == {"alg": alg, "typ": "at+jwt", "kid": key.kid}
    other = make()
    other.ensure_kid()
    with pytest.raises(JoseError):
        jwt.decode(tokens[0], KeySet([other]), algorithms=[alg])
