"""Every hosted page, at a phone's width (390 px) and a desktop's (1280 px): axe-core finds no
serious or critical violation, and the page body never scrolls sideways.

axe-core is the npm package in tests/browser/js (./scripts/test installs it); without it these
tests skip and say how to get it.
"""
from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from support import PASSWORD, make_client, make_user, pkce_pair

AXE = Path(__file__).parent / "js" / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (390, 1280)
REDIRECT = "http://127.0.0.1:9999/callback"

pytestmark = [pytest.mark.browser, pytest.mark.skipif(
    not AXE.exists(), reason="run `npm ci` in tests/browser/js (./scripts/test does) for axe-core")]


def audit(page) -> list[str]:
    """Serious and critical axe violations of the page, and a sideways scroll if there is one."""
    page.add_script_tag(content=AXE.read_text())
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.filter(v => ['serious', 'critical'].includes(v.impact))
                           .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '));
    }""")
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth")
    if overflow > 0:
        result.append(f"the page scrolls sideways by {overflow} px")
    return result


@pytest.fixture
def page(new_context):
    """A page whose CSP lets the test inject axe-core (the pages themselves are unchanged)."""
    return new_context(bypass_csp=True).new_page()


def check(page, url: str, width: int, found: dict) -> None:
    page.set_viewport_size({"width": width, "height": 800})
    page.goto(url)
    problems = audit(page)
    if problems:
        found[f"{url} at {width} px"] = problems


def sign_in(page, username: str) -> None:
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_load_state()


def authorize_url(issuer, client_id: str) -> str:
    _, challenge = pkce_pair()
    return (f"{issuer.url}/authorize?response_type=code&client_id={client_id}"
            f"&redirect_uri={REDIRECT}&scope=openid+profile&state={secrets.token_hex(4)}"
            f"&code_challenge={challenge}&code_challenge_method=S256")


@pytest.mark.parametrize("width", WIDTHS)
def test_pages_of_a_signed_out_visitor(page, issuer, width):
    found = {}
    for path in ("/login", "/forgot-password", "/forgot-password/confirm?username=alice",
                 "/authorize?client_id=nobody"):
        check(page, issuer.url + path, width, found)
    assert not found, found


@pytest.mark.parametrize("width", WIDTHS)
def test_pages_of_a_signed_in_user(page, issuer, width):
    make_user(issuer.app, "carol")
    third, _ = make_client(issuer.app, "Expenses", first_party=False)
    page.goto(issuer.url + "/login")
    sign_in(page, "carol")
    found = {}
    for url in (issuer.url + "/account", issuer.url + "/account/password",
                issuer.url + "/account/mfa", authorize_url(issuer, third),
                issuer.url + "/logout"):
        check(page, url, width, found)
    assert not found, found


@pytest.mark.parametrize("width", WIDTHS)
def test_pages_of_the_users_module(page, issuer, width):
    make_user(issuer.app, "root", admin=True)
    bob = make_user(issuer.app, "bob")
    page.goto(issuer.url + "/login")
    sign_in(page, "root")
    found = {}
    for path in ("/admin/users", "/admin/users?q=b", f"/admin/users/{bob}",
                 "/admin/users/new"):
        check(page, issuer.url + path, width, found)
    assert not found, found


@pytest.mark.parametrize("width", WIDTHS)
def test_forced_password_change_page(page, issuer, width):
    make_user(issuer.app, "dave", state="force_change_password")
    page.goto(issuer.url + "/login")
    sign_in(page, "dave")
    page.wait_for_url("**/change-password**")
    found = {}
    check(page, page.url, width, found)
    assert not found, found


@pytest.mark.issuer_settings(ISSUER_HOST="localhost")
@pytest.mark.parametrize("width", WIDTHS)
def test_pages_with_passkeys(page, issuer, width):
    """On a host name, /login shows *Sign in with a passkey*; /account/passkeys its form."""
    make_user(issuer.app, "carol")
    page.goto(issuer.url + "/login")
    sign_in(page, "carol")
    found = {}
    for url in (issuer.url + "/account/passkeys", issuer.url + "/logout"):
        check(page, url, width, found)
    page.context.clear_cookies()
    check(page, issuer.url + "/login", width, found)
    assert not found, found
