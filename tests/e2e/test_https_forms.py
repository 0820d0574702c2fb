"""Forms behind the documented TLS proxy (issue 17), without nginx: what the browser sends under
`Referrer-Policy: same-origin` passes Flask-WTF's strict https check; what it sent under
`no-referrer` (no Referer, `Origin: null`) is refused. tests/prod/https_recipe/ runs the
same in Chromium through nginx."""
from __future__ import annotations

import pytest

from support import PASSWORD, csrf_from, make_user

ISSUER = "https://auth.example.com"
PROXY = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}  # what nginx adds


@pytest.fixture
def settings(settings):
    settings.update(ISSUER=ISSUER, PROXY_FIX_X_FOR=1, PROXY_FIX_X_PROTO=1)
    return settings


def get(client, path):
    return client.get(path, base_url="http://auth.example.com", headers=PROXY)


def post(client, path, data, **headers):
    return client.post(path, base_url="http://auth.example.com", data=data,
                       headers={**PROXY, **headers})


def login_form(client, username="alice"):
    page = get(client, "/login")
    assert page.status_code == 200
    return {"username": username, "password": PASSWORD,
            "csrf_token": csrf_from(page.get_data(as_text=True))}


def test_strict_referrer_check_stays_on(app):
    assert app.config["WTF_CSRF_SSL_STRICT"] is True
    assert app.config["SESSION_COOKIE_NAME"] == "__Host-authserver"


def test_pages_keep_the_referer_on_their_own_origin_only(app, client):
    resp = get(client, "/login")
    assert resp.headers["Referrer-Policy"] == "same-origin"
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("__Host-authserver=") and "Secure" in cookie and "Path=/" in cookie
    assert "Domain=" not in cookie


def test_sign_in_with_a_same_origin_referer_and_origin_works_over_https(app, client):
    make_user(app, "alice")
    resp = post(client, "/login", login_form(client), Referer=f"{ISSUER}/login",
                Origin=ISSUER)
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/account")


@pytest.mark.parametrize("headers", [{}, {"Origin": "null"},
                                     {"Referer": "https://elsewhere.example/login"}],
                         ids=["no-referer", "origin-null", "foreign-referer"])
def test_a_post_without_a_same_origin_referer_is_an_expired_form(app, client, headers):
    make_user(app, "alice")
    resp = post(client, "/login", login_form(client), **headers)
    assert resp.status_code == 400
    assert "This form has expired" in resp.get_data(as_text=True)
