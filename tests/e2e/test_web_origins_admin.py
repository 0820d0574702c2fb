"""Registering a client's web origins (SPEC sections 6 and 7): `clients create --web-origin`
and the admin API's /api/admin/clients/{client_id}/web-origins; what is registered is what
/token answers."""
from __future__ import annotations

import json

import pytest

from test_admin_api import events, service_token

SPA = "https://spa.example"


@pytest.fixture
def api(app, client):
    token, _ = service_token(app, client)
    app.config["CLIENT_CACHE_TTL"] = 0

    def call(method, path, **kwargs):
        return client.open(path, method=method, headers={"Authorization": f"Bearer {token}"},
                           **kwargs)
    return call


def _create(runner, *args):
    result = runner.invoke(args=["clients", "create", "SPA", "--public", "--json",
                                 "--redirect-uri", "https://app.example/cb", *args])
    return result


def _token_error_origin(client, client_id, origin):
    resp = client.post("/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                       "refresh_token": "x"}, headers={"Origin": origin})
    return resp.headers.get("Access-Control-Allow-Origin")


def test_cli_defaults_to_the_redirect_uris_origins(runner, client):
    info = json.loads(_create(runner).output)
    assert info["web_origins"] == ["https://app.example"]
    assert _token_error_origin(client, info["client_id"], "https://app.example")
    assert _token_error_origin(client, info["client_id"], SPA) is None


def test_cli_web_origin_is_repeatable_and_replaces_the_default(runner, client):
    info = json.loads(_create(runner, "--web-origin", SPA, "--web-origin",
                              "http://localhost:3000").output)
    assert info["web_origins"] == [SPA, "http://localhost:3000"]
    assert _token_error_origin(client, info["client_id"], SPA) == SPA
    assert _token_error_origin(client, info["client_id"], "https://app.example") is None


@pytest.mark.parametrize("bad", ["https://spa.example/", "http://spa.example", "spa.example"])
def test_cli_refuses_an_invalid_web_origin(runner, bad):
    result = _create(runner, "--web-origin", bad)
    assert result.exit_code != 0
    assert "Web origin" in result.output


def test_admin_api_shows_and_sets_a_clients_web_origins(app, runner, client, api):
    client_id = json.loads(_create(runner).output)["client_id"]
    shown = api("GET", f"/api/admin/clients/{client_id}")
    assert shown.status_code == 200
    assert shown.json["web_origins"] == ["https://app.example"]
    assert shown.json["web_origins_from_redirect_uris"] is True
    changed = api("PUT", f"/api/admin/clients/{client_id}/web-origins",
                  json={"web_origins": ["HTTPS://SPA.example:443"]})
    assert changed.status_code == 200, changed.json
    assert changed.json["web_origins"] == [SPA]
    assert changed.json["web_origins_from_redirect_uris"] is False
    assert _token_error_origin(client, client_id, SPA) == SPA
    assert _token_error_origin(client, client_id, "https://app.example") is None
    assert events(app, "client_web_origins_changed")
    back = api("PUT", f"/api/admin/clients/{client_id}/web-origins", json={"web_origins": None})
    assert back.json["web_origins"] == ["https://app.example"]


def test_admin_api_refuses_bad_web_origins_and_unknown_clients(runner, api):
    client_id = json.loads(_create(runner).output)["client_id"]
    path = f"/api/admin/clients/{client_id}/web-origins"
    for body in ({"web_origins": ["https://spa.example/path"]}, {"web_origins": "x"}, {},
                 {"web_origins": [], "other": 1}):
        resp = api("PUT", path, json=body)
        assert resp.status_code == 422, body
        assert resp.content_type == "application/problem+json"
    assert api("GET", "/api/admin/clients/nope").status_code == 404
    assert api("PUT", "/api/admin/clients/nope/web-origins",
               json={"web_origins": []}).status_code == 404
