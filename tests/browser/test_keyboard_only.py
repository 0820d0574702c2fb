"""The main journeys with the keyboard alone: Tab, Shift+Tab, Enter, Space and typing; no
click, no fill. On every page met, each element the Tab key reaches shows a visible focus
indicator (its computed outline or box-shadow while focused), Shift+Tab goes back through
the same elements in the reverse order, and the page's primary button is among them.
"""
from __future__ import annotations

import re

import pyotp
import pytest
from playwright.sync_api import expect

from e2e.smtp_sink import code_in
from support import PASSWORD, give_totp, make_user

from .conftest import at

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a brand new passphrase 42"
MAX_TABS = 60

# What the focused element is, whether the walk met it before (window.kbdSeen, reset by
# each walk), and whether the focus shows: an outline (of at least 3:1 contrast with the
# background it is drawn on, WCAG 1.4.11) or a box-shadow while it has it.
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body || el === document.documentElement) return null;
  const seen = window.kbdSeen;
  let index = seen.indexOf(el);
  const again = index >= 0;
  if (!again) { seen.push(el); index = seen.length - 1; }
  const rgba = c => (c.match(/[\\d.]+/g) || []).map(Number).concat([1]).slice(0, 4);
  const lum = c => 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]);
  const lin = v => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  let behind = [255, 255, 255, 1];  // the first painted background around the element
  for (let e = el.parentElement; e; e = e.parentElement) {
    const c = rgba(getComputedStyle(e).backgroundColor);
    if (c[3] > 0) { behind = c; break; }
  }
  const s = getComputedStyle(el);
  const ring = rgba(s.outlineColor);
  const [hi, lo] = [lum(ring), lum(behind)].sort((a, b) => b - a);
  const contrast = Math.round((hi + 0.05) / (lo + 0.05) * 100) / 100;
  const r = el.getBoundingClientRect();
  const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0 && ring[3] > 0;
  const label = (el.getAttribute('aria-label')
                 || (el.labels && el.labels.length ? el.labels[0].innerText : '')
                 || el.innerText || el.value || '').trim().replace(/\\s+/g, ' ');
  return {index, again, label, name: el.getAttribute('name') || '',
          tag: el.tagName.toLowerCase(), indicator: outline || s.boxShadow !== 'none',
          faint: outline && s.outlineStyle !== 'auto' && contrast < 3,
          shown: r.width > 0 && r.height > 0,
          style: `outline ${s.outlineStyle} ${s.outlineWidth} ${s.outlineColor} ` +
                 `(${contrast}:1 on rgba(${behind.join(", ")})); ` +
                 `box-shadow ${s.boxShadow}`};
}"""


def press(page, key: str) -> dict | None:
    page.keyboard.press(key)
    return page.evaluate(FOCUSED)


def walk(page) -> list[dict]:
    """Tab from where the focus is until it comes back to an element met before: every
    element in the Tab order once, in order (the document itself, between the last element
    and the first, is not one)."""
    page.evaluate("window.kbdSeen = []")
    stops: list[dict] = []
    for _ in range(MAX_TABS):
        stop = press(page, "Tab")
        if stop is None:
            continue
        if stop["again"]:
            assert stop["index"] == 0, f"Tab went back to {stop['label']!r}, not to the start"
            return stops
        stops.append(stop)
    raise AssertionError(f"the focus did not come round in {MAX_TABS} Tabs: {stops}")


def focus_problems(page, primary: str) -> list[str]:
    """Walk the page with Tab, then back with Shift+Tab: what a keyboard user would miss."""
    stops = walk(page)
    problems = [f"{s['tag']} {s['label']!r} shows no focus ({s['style']})"
                for s in stops if not s["indicator"]]
    problems += [f"{s['tag']} {s['label']!r} shows its focus faintly ({s['style']})"
                 for s in stops if s["faint"]]
    problems += [f"{s['tag']} {s['label']!r} takes the focus but is not shown"
                 for s in stops if not s["shown"]]
    if primary not in [s["label"] for s in stops]:
        problems.append(f"Tab never reaches {primary!r}: {[s['label'] for s in stops]}")
    back = []  # from stops[0], Shift+Tab meets the last one first and ends on stops[0]
    for _ in range(MAX_TABS):
        if len(back) == len(stops):
            break
        stop = press(page, "Shift+Tab")
        if stop is not None:
            back.append(stop["index"])
    if back != list(range(len(stops)))[::-1]:
        problems.append(f"Shift+Tab does not retrace Tab: {back} "
                        f"({[s['label'] for s in stops]})")
    return problems


def tab_to(page, target: str, key: str = "Tab") -> dict:
    """Press Tab until the focused element's label (or field name) is `target`."""
    page.evaluate("window.kbdSeen = []")
    met = []
    for _ in range(MAX_TABS):
        stop = press(page, key)
        if stop is None:
            continue
        if target in (stop["label"], stop["name"]):
            return stop
        met.append(stop["label"] or stop["name"])
        if stop["again"]:
            break
    raise AssertionError(f"{key} never reaches {target!r}; it meets {met}")


def focused(page, name: str):
    return expect(page.locator(f'[name="{name}"]:visible')).to_be_focused()


def sign_in(page, issuer, username: str, password: str = PASSWORD) -> list[str]:
    """On /login, as it opens: type the name, Tab, type the password, Enter. Also returns
    what the login page would hide from a keyboard user."""
    page.wait_for_url(re.compile(re.escape(issuer.url) + r"/login(\?.*)?$"))
    focused(page, "username")  # autofocus: no Tab needed to start typing
    problems = focus_problems(page, "Sign in")
    tab_to(page, "username")
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    focused(page, "password")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    return problems


def test_sign_in_from_the_login_page(page, issuer, alice):
    page.goto(issuer.url + "/login")
    problems = sign_in(page, issuer, *alice)
    page.wait_for_url(issuer.url + "/account")
    expect(page.get_by_role("heading", level=1)).to_have_text("Alice Example")
    problems += focus_problems(page, "Sign out everywhere")
    assert not problems, problems


def test_a_wrong_password_keeps_the_keyboard_on_the_form(page, issuer, alice):
    """After a refused password the name is kept and the focus waits in the password field."""
    page.goto(issuer.url + "/login")
    sign_in(page, issuer, "alice", "not the password")
    expect(page.get_by_role("alert")).to_have_text("Incorrect user name or password.")
    focused(page, "password")
    page.keyboard.type(alice[1])
    page.keyboard.press("Enter")
    page.wait_for_url(issuer.url + "/account")


def test_the_second_step_and_not_you(page, issuer):
    secret = give_totp(issuer.app, make_user(issuer.app, "erin", name="Erin Example"))
    make_user(issuer.app, "frank", name="Frank Example")
    page.goto(issuer.url + "/login")
    problems = sign_in(page, issuer, "erin")
    page.wait_for_url(issuer.url + "/login/mfa")
    focused(page, "code")
    problems += focus_problems(page, "Verify")

    # Not you? is reached by Tab and starts again on the login page.
    tab_to(page, "Not you? Sign in with another account")
    page.keyboard.press("Enter")
    sign_in(page, issuer, "frank")
    page.wait_for_url(issuer.url + "/account")
    expect(page.get_by_role("heading", level=1)).to_have_text("Frank Example")

    page.context.clear_cookies()
    page.goto(issuer.url + "/login")
    sign_in(page, issuer, "erin")
    page.wait_for_url(issuer.url + "/login/mfa")
    focused(page, "code")
    page.keyboard.type(pyotp.TOTP(secret).now())
    page.keyboard.press("Enter")
    page.wait_for_url(issuer.url + "/account")
    expect(page.get_by_role("heading", level=1)).to_have_text("Erin Example")
    assert not problems, problems


def test_forgot_password(page, mailbox, issuer, alice):
    page.goto(issuer.url + "/login")
    focused(page, "username")
    tab_to(page, "Forgot your password?")
    page.keyboard.press("Enter")
    page.wait_for_url(issuer.url + "/forgot-password")
    focused(page, "username")
    problems = focus_problems(page, "Send code")
    tab_to(page, "username")
    page.keyboard.type("alice")
    page.keyboard.press("Enter")

    page.wait_for_url(at(issuer.url, "/forgot-password/confirm"))
    focused(page, "code")  # the name came along: the focus waits for the code
    problems += focus_problems(page, "Submit")
    code = code_in(mailbox.wait("alice@example.com", "Your verification code"))
    tab_to(page, "code")
    page.keyboard.type(code)
    for name in ("password", "password_confirm"):
        page.keyboard.press("Tab")
        focused(page, name)
        page.keyboard.type(NEW_PASSWORD)
    page.keyboard.press("Enter")

    page.wait_for_url(issuer.url + "/login?reset=done")
    expect(page.get_by_role("status")).to_have_text("Your password has been changed.")
    sign_in(page, issuer, "alice", NEW_PASSWORD)
    page.wait_for_url(issuer.url + "/account")
    assert not problems, problems


@pytest.mark.parametrize("script", [True, False], ids=["confirm-dialog", "in-page-ok"])
def test_the_users_module_reset(new_context, issuer, script):
    """/account -> Users module -> search -> View profile -> Reset -> OK. With script the
    question is the browser's own confirm() (its OK is the browser's, answered here by the
    dialog handler); without, it is a page whose OK the keyboard presses with Space."""
    make_user(issuer.app, "root", name="Root Admin", admin=True)
    make_user(issuer.app, "bob", name="Bob Builder")
    page = new_context(java_script_enabled=script).new_page()
    asked = []
    page.on("dialog", lambda d: (asked.append(d.message), d.accept()))
    page.goto(issuer.url + "/login")
    problems = sign_in(page, issuer, "root")
    page.wait_for_url(issuer.url + "/account")
    tab_to(page, "Users module")
    page.keyboard.press("Enter")

    page.wait_for_url(issuer.url + "/admin/users")
    focused(page, "q")
    problems += focus_problems(page, "Search")
    tab_to(page, "q")
    page.keyboard.type("build")
    page.keyboard.press("Enter")
    page.wait_for_url(issuer.url + "/admin/users?q=build")
    expect(page.get_by_role("link", name="View profile")).to_have_count(1)
    tab_to(page, "View profile")
    page.keyboard.press("Enter")

    page.wait_for_url(re.compile(re.escape(issuer.url) + r"/admin/users/\d+$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Bob Builder")
    problems += focus_problems(page, "Reset")
    tab_to(page, "Reset")
    page.keyboard.press("Enter")
    if script:
        expect(page.get_by_role("status")).to_contain_text("Password reset for bob")
        assert [q.split("?")[0] for q in asked] == ["Reset the password of bob"]
    else:
        expect(page.get_by_role("heading", level=1)).to_have_text("Please confirm")
        problems += focus_problems(page, "OK")
        tab_to(page, "OK")
        page.keyboard.press("Space")
        expect(page.get_by_role("status")).to_contain_text("Password reset for bob")
    expect(page.locator("main h1 .badge")).to_have_text("reset required")
    assert not problems, problems


@pytest.mark.issuer_settings(ACCESS_TOKEN_TTL=3)
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_session_expired_popup(new_context, issuer, demo_app, alice, scheme):
    """The pop-up takes the focus on its Refresh button, Tab keeps it there, Enter refreshes;
    its focus ring shows on the dialog's light and dark backgrounds alike."""
    page = new_context(color_scheme=scheme).new_page()
    start = demo_app.url + "/reports?year=2031"
    page.goto(start)
    sign_in(page, issuer, *alice)
    page.wait_for_url(start)
    first_token = page.locator("#token-id").inner_text()
    expect(page.get_by_role("dialog", name="Your session has expired")).to_be_visible(
        timeout=10_000)
    expect(page.get_by_role("button", name="Refresh", exact=True)).to_be_focused()
    problems = focus_problems(page, "Refresh")
    stops = walk(page)
    assert [s["label"] for s in stops] == ["Refresh"], stops
    page.keyboard.press("Enter")
    page.wait_for_url(start)
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.locator("#token-id")).not_to_have_text(first_token)
    assert not problems, problems


def test_the_check_sees_a_focus_without_indicator(new_context, issuer):
    """The check itself can fail: with every outline taken away, /login is reported."""
    page = new_context(bypass_csp=True).new_page()
    page.goto(issuer.url + "/login")
    page.add_style_tag(content=":focus, :focus-visible { outline: none !important; }")
    problems = focus_problems(page, "Sign in")
    assert any("'Sign in' shows no focus" in p for p in problems), problems
    assert any("'Forgot your password?' shows no focus" in p for p in problems), problems
    assert not any("Tab never reaches" in p for p in problems), problems
