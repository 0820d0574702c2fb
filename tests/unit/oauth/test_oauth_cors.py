"""CORS decisions (oauth/cors.py): what a web origin is, a client's web origins, and which
origin may read /token, /userinfo and /revoke answers (SPEC section 7)."""
from __future__ import annotations

import base64

import pytest

from authserver.oauth import cors, services
from support import make_client, make_user

APP = "https://app.example"
OTHER = "https://other.example"


# --- what a web origin is ----------------------------------------------------------------------

@pytest.mark.parametrize("text, origin", [
    ("https://app.example", "https://app.example"),
    ("HTTPS://App.Example", "https://app.example"),
    ("https://app.example:443", "https://app.example"),
    ("https://app.example:8443", "https://app.example:8443"),
    ("http://localhost:3000", "http://localhost:3000"),
    ("http://spa.localhost:3000", "http://spa.localhost:3000"),
    ("http://127.0.0.1:5173", "http://127.0.0.1:5173"),
    ("http://[::1]:8080", "http://[::1]:8080"),
    ("https://xn--bcher-kva.example", "https://xn--bcher-kva.example"),
])
def test_web_origin_is_normalised_as_browsers_send_it(text, origin):
    assert cors.parse_web_origin(text) == origin


@pytest.mark.parametrize("text", [
    "", "app.example", "//app.example", "ftp://app.example", "https://", "https://app.example/",
    "https://app.example/path", "https://app.example?x=1", "https://app.example#f",
    "https://user@app.example", "https://app.example:99999", "https://app.example:x",
    "http://app.example", "http://10.0.0.1:8080", "https://bücher.example", "*", "null",
    "https://app .example", 42, None,
])
def test_web_origin_must_be_scheme_host_port_https_or_loopback_http(text):
    with pytest.raises(cors.OriginInvalid):
        cors.parse_web_origin(text)


def test_default_web_origins_are_the_origins_of_the_redirect_uris():
    uris = ["https://app.example/callback", "https://app.example:443/other",
            "http://127.0.0.1:8080/cb", "com.example.app:/oauth", "https://b.example:8443/x"]
    assert cors.client_web_origins(uris, None) == [
        "https://app.example", "http://127.0.0.1:8080", "https://b.example:8443"]


def test_registered_web_origins_replace_the_default():
    assert cors.client_web_origins(["https://app.example/cb"], [OTHER]) == [OTHER]
    assert cors.client_web_origins(["https://app.example/cb"], []) == []


# --- the headers of an answer and of a preflight -----------------------------------------------

def test_allowed_origin_is_echoed_never_a_wildcard_nor_credentials():
    headers = cors.answer_headers(APP, [APP])
    assert headers["Access-Control-Allow-Origin"] == APP
    assert "Access-Control-Allow-Credentials" not in headers


def test_other_origin_or_no_origin_gets_no_cors_headers():
    assert cors.answer_headers(OTHER, [APP]) == {}
    assert cors.answer_headers(None, [APP]) == {}
    assert cors.answer_headers("null", [APP]) == {}


def test_preflight_names_methods_headers_and_max_age_for_an_allowed_origin():
    headers = cors.preflight_headers(APP, {APP}, ("GET", "POST"))
    assert headers == {"Access-Control-Allow-Origin": APP,
                       "Access-Control-Allow-Methods": "GET, POST",
                       "Access-Control-Allow-Headers": "Authorization, Content-Type",
                       "Access-Control-Max-Age": str(cors.MAX_AGE)}
    assert cors.preflight_headers(OTHER, {APP}, ("POST",)) == {}
    assert cors.preflight_headers(None, {APP}, ("POST",)) == {}


# --- registration ------------------------------------------------------------------------------

def test_create_client_normalises_registered_web_origins(ctx):
    client, _ = services.create_client("SPA", ["https://app.example/cb"], public=True,
                                       web_origins=["HTTPS://Spa.Example", "https://spa.example"])
    assert client.web_origins == ["https://spa.example"]
    client, _ = services.create_client("SPA 2", ["https://app.example/cb"], public=True)
    assert client.web_origins is None
    assert services.all_web_origins() == {"https://spa.example", "https://app.example"}


def test_create_client_refuses_an_origin_with_a_path(ctx):
    with pytest.raises(services.ClientInvalid, match="path"):
        services.create_client("SPA", ["https://app.example/cb"], public=True,
                               web_origins=["https://app.example/"])


# --- the decisions as the endpoints apply them -------------------------------------------------

@pytest.fixture
def clients(app):
    """A public SPA on APP and a confidential server-side app on OTHER."""
    app.config["CLIENT_CACHE_TTL"] = 0
    make_user(app)
    spa, _ = make_client(app, "SPA", redirect_uris=[APP + "/cb"], public=True)
    web, secret = make_client(app, "Web", redirect_uris=[OTHER + "/cb"])
    return spa, web, secret


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def test_token_error_is_readable_by_the_clients_own_origin_only(client, clients):
    spa, _, _ = clients
    body = {"grant_type": "authorization_code", "code": "nope", "client_id": spa,
            "redirect_uri": APP + "/cb", "code_verifier": "x" * 43}
    own = client.post("/token", data=body, headers={"Origin": APP})
    assert own.status_code == 400 and own.json["error"] == "invalid_grant"
    assert own.headers["Access-Control-Allow-Origin"] == APP
    assert "Origin" in own.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in own.headers
    other = client.post("/token", data=body, headers={"Origin": OTHER})
    assert "Access-Control-Allow-Origin" not in other.headers
    assert "Origin" in other.headers["Vary"]


def test_no_origin_gets_no_cors_headers(client, clients):
    spa, _, _ = clients
    resp = client.post("/token", data={"grant_type": "refresh_token", "client_id": spa,
                                       "refresh_token": "x"})
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert "Origin" in resp.headers["Vary"]


def test_confidential_clients_token_answer_is_not_exposed_to_other_origins(client, clients):
    spa, web, secret = clients
    body = {"grant_type": "client_credentials"}
    for origin in (APP, "https://evil.example"):  # APP is a web origin, but of another client
        resp = client.post("/token", data=body, headers={"Origin": origin,
                                                         "Authorization": _basic(web, secret)})
        assert resp.status_code in (200, 400)
        assert "Access-Control-Allow-Origin" not in resp.headers
        resp = client.post("/token", data={**body, "client_id": web, "client_secret": secret},
                           headers={"Origin": origin})
        assert "Access-Control-Allow-Origin" not in resp.headers


def test_preflight_is_allowed_for_any_registered_web_origin(client, clients):
    for path, methods in (("/token", "POST"), ("/revoke", "POST"), ("/userinfo", "GET, POST")):
        resp = client.options(path, headers={"Origin": APP,
                                             "Access-Control-Request-Method": "POST",
                                             "Access-Control-Request-Headers": "authorization"})
        assert resp.status_code == 204 and "Content-Type" not in resp.headers
        assert resp.headers["Access-Control-Allow-Origin"] == APP
        assert resp.headers["Access-Control-Allow-Methods"] == methods
        assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
        assert int(resp.headers["Access-Control-Max-Age"]) > 0
        assert "Access-Control-Allow-Credentials" not in resp.headers
        assert "Origin" in resp.headers["Vary"]


def test_preflight_from_an_unregistered_origin_is_not_allowed(client, clients):
    resp = client.options("/userinfo", headers={"Origin": "https://evil.example",
                                                "Access-Control-Request-Method": "GET"})
    assert resp.status_code == 204
    assert not any(h.startswith("Access-Control-Allow") for h in resp.headers.keys())


def test_userinfo_invalid_token_error_is_readable_so_the_app_can_refresh(client, clients):
    resp = client.get("/userinfo", headers={"Origin": APP, "Authorization": "Bearer nope"})
    assert resp.status_code == 401
    assert resp.headers["Access-Control-Allow-Origin"] == APP
    assert "WWW-Authenticate" in resp.headers["Access-Control-Expose-Headers"]
    resp = client.get("/userinfo", headers={"Origin": "https://evil.example",
                                            "Authorization": "Bearer nope"})
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_discovery_and_jwks_stay_readable_from_any_origin(client):
    for path in ("/.well-known/openid-configuration", "/.well-known/jwks.json"):
        resp = client.get(path, headers={"Origin": "https://evil.example"})
        assert resp.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("path, kwargs", [
    ("/token", {"data": {"client_id": "x" * 10_000, "grant_type": "refresh_token"}}),
    ("/token", {"data": b"client_id=%FF%FE&grant_type=x",
                "content_type": "application/x-www-form-urlencoded"}),
    ("/token", {"data": b"a" * (2 * 1024 * 1024),
                "content_type": "application/x-www-form-urlencoded"}),
    ("/token", {"headers": {"Authorization": "Basic " + base64.b64encode(b"\xff:\xfe").decode()}}),
    ("/token", {"headers": {"Authorization": "Basic !!!"}}),
    ("/revoke", {"json": {"token": "x", "client_id": "y"}}),
    ("/userinfo", {"headers": {"Authorization": "Bearer " + "x" * 10_000}}),
    ("/userinfo", {"headers": {"Authorization": "Bearer eyJhbGciOiJub25lIn0.e30."}}),
    ("/userinfo", {"data": {"access_token": "x"}}),
])
def test_bad_input_with_an_origin_never_breaks_the_answer(client, clients, path, kwargs):
    headers = {"Origin": APP, **kwargs.pop("headers", {})}
    resp = client.post(path, headers=headers, **kwargs)
    assert 400 <= resp.status_code < 500, resp.get_data(as_text=True)[:200]
    assert "Origin" in resp.headers["Vary"]
    assert resp.headers.get("Access-Control-Allow-Origin") in (APP, None)


def test_any_client_origins_reloads_on_a_miss_at_most_once_a_second(app, monkeypatch):
    """A client registered by another process is allowed at once; unknown origins cannot make
    every preflight query the database."""
    app.config["CLIENT_CACHE_TTL"] = 10
    registered, loads, now = {APP}, [], [1000.0]
    monkeypatch.setattr(cors.time, "monotonic", lambda: now[0])
    wiring = cors.Cors(lambda _id: None, lambda: loads.append(1) or set(registered))
    with app.app_context():
        assert APP in wiring.any_client_origins(APP) and len(loads) == 1
        registered.add(OTHER)
        now[0] += 0.5
        assert OTHER not in wiring.any_client_origins(OTHER)  # within the interval: cached
        assert wiring.any_client_origins(APP) and len(loads) == 1
        now[0] += 0.6
        assert OTHER in wiring.any_client_origins(OTHER) and len(loads) == 2
        for _ in range(5):
            wiring.any_client_origins("https://evil.example")
        assert len(loads) == 2
        now[0] += 1.0
        wiring.any_client_origins("https://evil.example")
        assert len(loads) == 3
        registered.discard(OTHER)
        now[0] += 10
        assert OTHER not in wiring.any_client_origins(APP)  # TTL over: removals take effect
