"""The server's "default" token generator: RFC 9068 access tokens with our lifetimes, never
a scope the client is not registered for."""
from __future__ import annotations

import pytest
from joserfc import jwt

from authserver import clock
from authserver.oauth import services
from authserver.oauth.server import current_server
from authserver.tokens import keyring
from authserver.tokens.jwt_access import AccessTokenInvalid, decode_access_token


@pytest.fixture
def service(ctx):
    client, _ = services.create_client("Service", [], grant_types=["client_credentials"],
                                       scope="profile email")
    return client


def generate(client, scope, **kwargs) -> dict:
    return current_server().generate_token(client=client, grant_type="client_credentials",
                                           scope=scope, include_refresh_token=False, **kwargs)


def claims(token: dict) -> dict:
    keys = keyring.current_keyring().verification_keyset(clock.now())
    decoded = jwt.decode(token["access_token"], keys)
    assert decoded.header["typ"] == "at+jwt"
    assert decoded.header["kid"]
    return decoded.claims


def test_access_token_is_an_at_jwt_for_the_client(frozen, service):
    token = generate(service, "profile")
    body = claims(token)
    assert body["sub"] == body["client_id"] == body["aud"] == service.client_id
    assert body["exp"] - body["iat"] == 3600 == token["expires_in"]
    assert body["jti"]
    assert "refresh_token" not in token


@pytest.mark.parametrize("asked, granted", [("admin", ""), ("profile admin", "profile"),
                                            ("email bogus profile", "email profile")])
def test_scope_is_never_wider_than_the_registration(service, asked, granted):
    token = generate(service, asked)
    assert claims(token)["scope"] == granted
    assert token.get("scope", "") == granted


def test_access_token_lifetime_follows_the_setting(frozen, ctx):
    ctx.config["ACCESS_TOKEN_TTL"] = 600
    client, _ = services.create_client("Service", [], grant_types=["client_credentials"])
    token = generate(client, None)
    assert token["expires_in"] == 600
    assert claims(token)["exp"] - claims(token)["iat"] == 600


def test_decode_refuses_an_id_token_shaped_jwt(frozen, service):
    key = keyring.current_keyring().signing_key("RS256", clock.now())
    body = claims(generate(service, "profile"))
    token = jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, body, key,
                       algorithms=["RS256"])
    with pytest.raises(AccessTokenInvalid):
        decode_access_token(token)


def test_decode_refuses_another_issuer(frozen, ctx, service):
    token = generate(service, "profile")["access_token"]
    ctx.config["ISSUER"] = "https://elsewhere.example"
    with pytest.raises(AccessTokenInvalid):
        decode_access_token(token)
