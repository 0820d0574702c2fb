"""Every hosted page, at a phone's width (390 px) and a desktop's (1280 px), the Users module
also at a small laptop's (960 px): axe-core finds no serious or critical violation, the page
body never scrolls sideways, and above a phone's width the page's card keeps clear of both
edges of the window.

axe-core is the npm package in tests/browser/js (./scripts/test installs it); without it these
tests skip and say how to get it.
"""
from __future__ import annotations

import secrets
from pathlib import Path

import pyotp
import pytest
from support import PASSWORD, free_port, give_totp, make_client, make_user, pkce_pair
from upstreamkit import mock_provider

from authserver.accounts import upstreams
from authserver.accounts.factors import upstream as upstream_flow

AXE = Path(__file__).parent / "js" / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (390, 1280)
USERS_MODULE_WIDTHS = (390, 960, 1280)  # its card is wider than the others' (64rem)
PHONE_MAX = 544  # 34rem: up to this width the card is the whole page, edge to edge
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
    left, right, width = page.evaluate("""() => {
        const r = document.querySelector('main').getBoundingClientRect();
        return [r.left, r.right, document.documentElement.clientWidth]; }""")
    if width > PHONE_MAX and (left < 8 or width - right < 8):
        result.append(f"the card touches the window's edge: it spans {left:.0f} to "
                      f"{right:.0f} px of {width} px")
    return result


@pytest.fixture
def page(new_context):
    """A page whose CSP lets the test inject axe-core (the pages themselves are unchanged)."""
    return new_context(bypass_csp=True).new_page()


def check(page, url: str, width: int, found: dict) -> None:
    page.set_viewport_size({"width": width, "height": 800})
    page.goto(url)
    check_here(page, url, width, found)


def check_here(page, label: str, width: int, found: dict) -> None:
    """Audit the page as it is now (reached by a click or a form)."""
    page.set_viewport_size({"width": width, "height": 800})
    problems = audit(page)
    if problems:
        found[f"{label} at {width} px"] = problems


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
                 "/authorize?client_id=nobody", "/nowhere"):
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


@pytest.mark.parametrize("width", USERS_MODULE_WIDTHS)
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


def submit_code(page, code: str) -> None:
    page.locator("input[name=code]").fill(code)
    page.locator("form:has(input[name=code]) [type=submit]").click()
    page.wait_for_load_state()


@pytest.mark.parametrize("width", WIDTHS)
def test_second_step_pages(page, issuer, width):
    """/login/mfa (as it opens and with a wrong code), then /account with its *Continue to
    the Users module* banner (the sign-in started there) and the second step's own page."""
    secret = give_totp(issuer.app, make_user(issuer.app, "erin", admin=True))
    page.goto(issuer.url + "/admin/users")
    sign_in(page, "erin")
    page.wait_for_url("**/login/mfa")
    found = {}
    check(page, page.url, width, found)
    submit_code(page, "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    check_here(page, "/login/mfa with a wrong code", width, found)
    submit_code(page, pyotp.TOTP(secret).now())
    page.wait_for_url("**/account")
    if page.get_by_text("Continue to the Users module").count() != 1:
        found["/account"] = ["no *Continue to the Users module* after a sign-in from there"]
    check_here(page, "/account with the banner", width, found)
    check(page, issuer.url + "/account/mfa", width, found)
    assert not found, found


@pytest.mark.issuer_settings(MFA_REQUIRED="all")
@pytest.mark.parametrize("width", WIDTHS)
def test_enrolment_during_sign_in_and_the_recovery_codes(page, issuer, width):
    make_user(issuer.app, "fay")
    page.goto(issuer.url + "/login")
    sign_in(page, "fay")
    page.wait_for_url("**/login/mfa/enrol")
    found = {}
    check(page, page.url, width, found)
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    submit_code(page, pyotp.TOTP(secret).now())
    if page.get_by_role("heading").first.inner_text() == "Set up two-step sign-in":
        found["/login/mfa/enrol"] = ["the code from the key shown was refused"]
    else:
        check_here(page, "the recovery codes", width, found)
    assert not found, found


@pytest.mark.parametrize("width", WIDTHS)
def test_loop_page(page, issuer, width):
    """Five silent round trips to the app (the browser's own cookies, redirects not
    followed), then the sixth in the page: the loop page (SPEC section 7)."""
    make_user(issuer.app, "gus")
    client_id, _ = make_client(issuer.app, "Bouncing app")
    page.goto(issuer.url + "/login")
    sign_in(page, "gus")
    for _ in range(5):
        resp = page.request.get(authorize_url(issuer, client_id), max_redirects=0)
        assert resp.status == 302 and resp.headers["location"].startswith(REDIRECT)
    found = {}
    check(page, authorize_url(issuer, client_id), width, found)
    assert page.get_by_role("heading", name="We stopped a redirect loop").count() == 1
    assert not found, found


@pytest.mark.parametrize("width", WIDTHS)
def test_pages_that_end_a_sign_in_or_refuse_an_app(page, issuer, width):
    """inactive, reset (an administrator's Reset), no licence, and the signed-out page."""
    make_user(issuer.app, "hal", state="disabled")
    make_user(issuer.app, "ivy", state="reset_required")
    make_user(issuer.app, "jo")
    payroll, _ = make_client(issuer.app, "Payroll", requires_licence=True)
    found = {}
    for username, heading in (("hal", "inactive"), ("ivy", "reset")):
        page.goto(issuer.url + "/login")
        sign_in(page, username)
        if heading not in page.locator("main").inner_text():
            found[username] = [f"no page saying {heading}"]
        else:
            check_here(page, f"{username}'s page", width, found)
    page.goto(issuer.url + "/login")
    sign_in(page, "jo")
    check(page, authorize_url(issuer, payroll), width, found)
    page.goto(issuer.url + "/logout")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
    check_here(page, "the signed-out page", width, found)
    assert not found, found


@pytest.mark.parametrize("width", WIDTHS)
def test_upstream_pages(page, issuer, width):
    """/login with *Sign in with ...* links, an upstream that cannot be reached, and an
    identity no account is connected to."""
    upstream_flow.forget_cache()
    found = {}
    with mock_provider([{"sub": "stranger"}]) as url:
        with issuer.app.app_context():
            upstreams.add("mock", url, "authserver", "secret", label="Mock ID")
            upstreams.add("gone", f"http://127.0.0.1:{free_port()}", "c", "s", label="Gone ID")
        check(page, issuer.url + "/login", width, found)
        page.get_by_role("link", name="Sign in with Gone ID").click()
        page.wait_for_load_state()
        check_here(page, "the upstream failed page", width, found)
        page.goto(issuer.url + "/login")
        page.get_by_role("link", name="Sign in with Mock ID").click()
        page.get_by_role("button", name="stranger").click()
        page.wait_for_load_state()
        if "No account is connected" not in page.locator("main").inner_text():
            found["not linked"] = ["no *No account is connected* page"]
        else:
            check_here(page, "the not-linked page", width, found)
    upstream_flow.forget_cache()
    assert not found, found
