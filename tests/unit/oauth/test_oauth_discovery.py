"""oauth.discovery: the provider metadata names only what the server does."""
from __future__ import annotations

from authserver.oauth.discovery import provider_metadata

ISSUER = "https://auth.example.com"


def test_metadata_issuer_and_endpoints_are_under_the_issuer():
    meta = provider_metadata(ISSUER)
    assert meta["issuer"] == ISSUER
    for name, value in meta.items():
        if name.endswith(("_endpoint", "_uri")):
            assert value.startswith(ISSUER + "/"), name


def test_metadata_lists_only_what_is_supported():
    meta = provider_metadata(ISSUER)
    assert meta["response_types_supported"] == ["code"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert set(meta["grant_types_supported"]) == {"authorization_code", "refresh_token",
                                                  "client_credentials"}
    assert "none" not in meta["id_token_signing_alg_values_supported"]
    assert "none" not in meta["introspection_endpoint_auth_methods_supported"]
    assert "RS256" in meta["id_token_signing_alg_values_supported"]


def test_discovery_is_served_from_memory_with_the_configured_issuer(app, client):
    first = client.get("/.well-known/openid-configuration")
    assert first.status_code == 200
    assert first.get_json()["issuer"] == app.config["ISSUER"]
    assert "max-age" in first.headers["Cache-Control"]
    assert client.get("/.well-known/openid-configuration").data == first.data
