"""Driving the recipe's hosted pages by the SPEC's paths, fields and buttons, with every form
post checked where it is made: the 400 "This form has expired" that every form got over https
under `Referrer-Policy: no-referrer` fails the test at once, saying which form and what
Referer the browser sent."""
from __future__ import annotations

import re

import requests

from browser.conftest import field, press, sign_in
from httpskit import ISSUER
from prodkit import PASSWORD


def hosted(path: str) -> re.Pattern:
    return re.compile(re.escape(ISSUER + path) + r"(\?.*)?$")


def posted(page, act) -> None:
    """Do `act`, which submits a form to the issuer; the POST must not be refused as expired
    (the 400 every form got over https while the pages sent `Referrer-Policy: no-referrer`)."""
    with page.expect_response(lambda r: r.request.method == "POST"
                              and r.url.startswith(ISSUER + "/")) as answer:
        act()
    resp = answer.value
    assert resp.status != 400, (
        f"POST {resp.url.split('?')[0]} answered 400 over https (Referer sent: "
        f"{resp.request.headers.get('referer')!r}): {resp.text()[:300]}")


def submit(page, name: str) -> None:
    """Submit the form that holds field `name` (Enter in it), whatever its button says."""
    posted(page, lambda: field(page, name).press("Enter"))


def post_by(page, label: str) -> None:
    """Press the button `label` of a form that posts to the issuer."""
    posted(page, lambda: press(page, label))


def signs_in(page, username: str, password: str = PASSWORD) -> None:
    posted(page, lambda: sign_in(page, username, password))


def sign_in_to_account(page, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{ISSUER}/login")
    signs_in(page, username, password)
    page.wait_for_url(hosted("/account"))


def admin_api(recipe) -> requests.Session:
    """requests with a client_credentials token of scope admin, fetched at /token over https."""
    web, tool = recipe.session(), recipe.clients["tool"]
    resp = web.post(f"{ISSUER}/token", data={"grant_type": "client_credentials",
                                              "scope": "admin"},
                    auth=(tool["client_id"], tool["client_secret"]), timeout=10)
    assert resp.status_code == 200, resp.text
    web.headers["Authorization"] = "Bearer " + resp.json()["access_token"]
    return web
