"""The recipe's https edge, with requests through nginx (the certificate verified): http goes
to https, discovery names https://auth.example.com everywhere, HSTS, the __Host- cookie,
/metrics refused outside the monitoring network, /token and the admin API."""
from __future__ import annotations

from urllib.parse import urljoin

import pytest
import requests

from httpskit import HOST
from https_recipe.pages import ISSUER, admin_api

pytestmark = pytest.mark.slow


def test_issuer_is_https_everywhere_behind_nginx(recipe):
    """http redirects to https; discovery names https://auth.example.com; HSTS; /metrics refused."""
    assert recipe.issuer == ISSUER  # authserver.env's issuer, unchanged
    plain = requests.get(f"http://{HOST}/login?x=1", allow_redirects=False, timeout=10)
    assert plain.status_code == 301 and plain.headers["Location"] == f"{ISSUER}/login?x=1"
    web = recipe.session()
    meta = web.get(f"{ISSUER}/.well-known/openid-configuration", timeout=10)
    assert meta.status_code == 200, meta.text
    body = meta.json()
    assert body["issuer"] == ISSUER
    urls = [v for v in body.values() if isinstance(v, str) and v.startswith("http")]
    assert urls and all(u.startswith(ISSUER + "/") for u in urls if u != ISSUER), urls
    login = web.get(f"{ISSUER}/login", timeout=10)
    assert login.headers["Strict-Transport-Security"].startswith("max-age=")
    assert login.headers["Referrer-Policy"] == "same-origin"
    cookie = login.headers["Set-Cookie"]
    assert cookie.startswith("__Host-authserver=") and "Secure" in cookie, cookie
    assert web.get(f"{ISSUER}/metrics", timeout=10).status_code == 403
    assert web.get(f"{ISSUER}/readyz", timeout=10).status_code == 200


def test_token_and_admin_api_over_https(recipe, mailbox):
    """/token and the admin API through nginx, the certificate verified."""
    bad = recipe.session().post(f"{ISSUER}/token", data={"grant_type": "client_credentials"},
                                auth=(recipe.clients["tool"]["client_id"], "wrong"), timeout=10)
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    web = admin_api(recipe)
    created = web.post(f"{ISSUER}/api/admin/users", json={
        "username": "tim", "email": "tim@example.com", "name": "Tim Example"}, timeout=10)
    assert created.status_code == 201, created.text
    location = urljoin(created.url, created.headers["Location"])
    assert location.startswith(f"{ISSUER}/api/admin/users/")
    assert web.get(location, timeout=10).json()["username"] == "tim"
    found = web.get(f"{ISSUER}/api/admin/users", params={"q": "tim"}, timeout=10)
    assert [u["username"] for u in found.json()["items"]] == ["tim"]
    assert web.get(f"{ISSUER}/api/openapi.json", timeout=10).status_code == 200
    assert web.get(f"{ISSUER}/api/admin/users", headers={"Authorization": ""},
                   timeout=10).status_code == 401
