"""oauth.services.create_client and the Client model's Authlib checks: exact redirect URIs,
keyed-hash secrets, auth methods, grants and scopes."""
from __future__ import annotations

import pytest

from authserver.extensions import db
from authserver.oauth import services
from authserver.oauth.models import Client

URI = "https://app.example/callback"


@pytest.fixture
def confidential(ctx):
    return services.create_client("App", [URI], post_logout_redirect_uris=[
        "https://app.example/bye"])


@pytest.fixture
def public(ctx):
    client, secret = services.create_client("SPA", [URI], public=True, require_pkce=False)
    assert secret is None
    return client


def test_secret_is_high_entropy_and_stored_only_as_a_keyed_hash(confidential):
    client, secret = confidential
    assert len(secret) >= 43
    assert client.secret_hash and secret not in client.secret_hash
    assert client.check_client_secret(secret)
    assert not client.check_client_secret(secret + "x")
    assert not client.check_client_secret("")
    assert not client.check_client_secret(None)


def test_public_client_has_no_secret_and_always_requires_pkce(public):
    assert public.secret_hash is None
    assert public.require_pkce
    assert not public.check_client_secret("anything")
    assert public.check_endpoint_auth_method("none", "token")
    assert not public.check_endpoint_auth_method("client_secret_basic", "token")
    assert public.token_endpoint_auth_method == "none"


def test_confidential_client_must_authenticate_with_its_secret(confidential):
    client, _ = confidential
    assert client.check_endpoint_auth_method("client_secret_basic", "token")
    assert client.check_endpoint_auth_method("client_secret_post", "token")
    assert not client.check_endpoint_auth_method("none", "token")


@pytest.mark.parametrize("uri", [URI + "/", URI.upper(), "https://app.example/callback?x=1",
                                 "https://app.example:443/callback", "http://app.example/callback",
                                 "https://app.example/Callback", ""])
def test_redirect_uri_must_match_exactly(confidential, uri):
    assert not confidential[0].check_redirect_uri(uri)
    assert confidential[0].check_redirect_uri(URI)


def test_only_the_code_response_type_is_allowed(confidential):
    client, _ = confidential
    assert client.check_response_type("code")
    for other in ("token", "id_token", "code id_token", "none", ""):
        assert not client.check_response_type(other)


def test_default_grants_and_scope(confidential):
    client, _ = confidential
    assert client.grant_types == ["authorization_code", "refresh_token"]
    assert client.check_grant_type("refresh_token")
    assert not client.check_grant_type("client_credentials")
    assert not client.check_grant_type("password")
    assert client.scope == "openid profile email offline_access"


def test_allowed_scope_never_widens_and_admin_needs_asking(ctx):
    client, _ = services.create_client("Admin tool", [URI], scope="openid admin")
    assert client.get_allowed_scope("openid admin profile") == "openid admin"
    assert client.get_allowed_scope(None) == "openid"
    assert client.get_allowed_scope("bogus") == ""


@pytest.mark.parametrize("kwargs, message", [
    ({"grant_types": ["password"]}, "Unsupported grant type"),
    ({"grant_types": ["implicit"]}, "Unsupported grant type"),
    ({"public": True, "grant_types": ["client_credentials"]}, "public client"),
    ({"scope": "openid root"}, "Scopes must be among"),
])
def test_create_client_refuses_invalid_registrations(ctx, kwargs, message):
    with pytest.raises(services.ClientInvalid) as info:
        services.create_client("Bad", [URI], **kwargs)
    assert message in info.value.message


@pytest.mark.parametrize("uri", ["/relative/callback", "app.example/callback",
                                 "https://app.example/cb#fragment", "javascript:alert(1)"])
def test_create_client_refuses_bad_redirect_uris(ctx, uri):
    with pytest.raises(services.ClientInvalid):
        services.create_client("Bad", [uri])


def test_code_flow_client_needs_a_redirect_uri(ctx):
    with pytest.raises(services.ClientInvalid):
        services.create_client("Bad", [])
    client, _ = services.create_client("Service", [], grant_types=["client_credentials"])
    assert client.grant_types == ["client_credentials"]


def test_native_app_custom_scheme_is_accepted(ctx):
    client, _ = services.create_client("Native", ["com.example.app:/callback"], public=True)
    assert client.check_redirect_uri("com.example.app:/callback")


@pytest.mark.parametrize("client_id", [None, "", "x" * 65, 12, ["a"]])
def test_query_client_refuses_odd_ids_without_a_query(ctx, client_id):
    assert services.query_client(client_id) is None


def test_query_client_finds_by_client_id(confidential):
    client, _ = confidential
    assert services.query_client(client.client_id).id == client.id
    assert db.session.get(Client, client.id).name == "App"
