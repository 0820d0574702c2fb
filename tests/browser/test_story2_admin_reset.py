"""Story 2 in a real browser: an administrator finds a user, View profile, Reset, OK; the user
resets with the emailed code and link; the old password and the old sessions stop working."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from e2e.smtp_sink import code_in
from support import PASSWORD, make_user

from .conftest import RedirectLog, at, field, press, sign_in

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a fresh passphrase of mine"
RESET_SUBJECT = "An administrator asked you to reset your password"
LINK = re.compile(r"https?://\S+/forgot-password/confirm\S*")


def admin_opens_the_profile(page, issuer, screenshot, q: str) -> None:
    """Sign in, open /admin/users, type part of a name into the search box, View profile."""
    page.goto(f"{issuer.url}/login")
    sign_in(page, "root", PASSWORD)
    page.wait_for_url(f"{issuer.url}/account")
    page.goto(f"{issuer.url}/admin/users")
    field(page, "q").fill(q)
    field(page, "q").press("Enter")
    page.wait_for_url(at(issuer.url, "/admin/users"))
    expect(page.get_by_role("link", name="View profile", exact=True)).to_have_count(1)
    screenshot(page, "admin-search")
    page.get_by_role("link", name="View profile", exact=True).click()
    page.wait_for_url(re.compile(re.escape(issuer.url) + r"/admin/users/\d+$"))
    expect(page.locator("main")).to_contain_text("alice@example.com")
    screenshot(page, "admin-profile")


def admin_presses_reset_and_ok(page, screenshot, script: bool) -> list[str]:
    """Reset, then OK: in the browser's confirm() with script, on the page without it."""
    asked: list[str] = []
    if script:
        page.on("dialog", lambda d: (asked.append(d.message), d.accept()))
        press(page, "Reset")
    else:
        press(page, "Reset")
        expect(page.get_by_role("heading", level=1)).to_have_text("Please confirm")
        screenshot(page, "admin-confirm-ok")
        press(page, "OK")
    expect(page.get_by_role("status")).to_contain_text("Password reset for alice")
    expect(page.locator("main h1 .badge")).to_have_text("reset required")
    screenshot(page, "admin-reset-done")
    return asked


def user_sets_a_new_password(page, issuer, link: str, code: str, screenshot) -> None:
    """Follow the emailed link, paste the code, type the new password twice, Submit."""
    page.goto(link)
    expect(field(page, "username")).to_have_value("alice")
    field(page, "code").fill(code)
    field(page, "password").fill(NEW_PASSWORD)
    field(page, "password_confirm").fill(NEW_PASSWORD)
    screenshot(page, "user-confirm")
    press(page, "Submit")
    page.wait_for_url(f"{issuer.url}/login?reset=done")
    expect(page.get_by_role("status")).to_have_text("Your password has been changed.")


@pytest.mark.parametrize("script", [True, False], ids=["confirm-dialog", "in-page-ok"])
def test_admin_reset_makes_the_user_choose_a_new_password_and_ends_old_sessions(
        page, mailbox, issuer, demo_app, new_context, screenshot, script):
    make_user(issuer.app, "alice", name="Alice Liddell")
    make_user(issuer.app, "bob", name="Bob Builder")
    make_user(issuer.app, "root", name="Root Admin", admin=True)
    laptop = new_context().new_page()  # alice's, signed in to the app before the reset
    laptop.goto(demo_app.url + "/")
    sign_in(laptop, "alice", PASSWORD)
    expect(laptop.locator("#user-name")).to_have_text("Alice Liddell")

    desk = new_context(java_script_enabled=script).new_page()
    admin_opens_the_profile(desk, issuer, screenshot, "LIDD")
    asked = admin_presses_reset_and_ok(desk, screenshot, script)
    assert [q.split("?")[0] for q in asked] == (["Reset the password of alice"] if script else [])

    mail = mailbox.wait("alice@example.com", RESET_SUBJECT)
    link = LINK.search(mailbox.text(mail)).group(0)
    assert link == f"{issuer.url}/forgot-password/confirm?username=alice"

    # Until the reset, the old password only shows the way to it.
    page.goto(f"{issuer.url}/login")
    sign_in(page, "alice", PASSWORD)
    expect(page.locator("main")).to_contain_text(re.compile("reset", re.I))
    expect(page.locator('main a[href^="/forgot-password/confirm"]').first).to_be_visible()
    screenshot(page, "user-must-reset")

    user_sets_a_new_password(page, issuer, link, code_in(mail), screenshot)
    sign_in(page, "alice", PASSWORD)
    expect(page.get_by_role("alert")).to_have_text("Incorrect user name or password.")
    sign_in(page, "alice", NEW_PASSWORD)
    page.wait_for_url(f"{issuer.url}/account")
    expect(page.get_by_role("heading", level=1)).to_have_text("Alice Liddell")
    screenshot(page, "user-signed-in")

    # The laptop's session ended: /refresh (through the app) and /account both ask to sign in.
    hops = RedirectLog().attach(laptop)
    laptop.goto(demo_app.url + "/login?return_to=/")
    laptop.wait_for_url(at(issuer.url, "/login"))
    assert hops.visited(issuer.url, "/refresh")
    assert not hops.visited(demo_app.url, "/callback")
    screenshot(laptop, "old-session-refresh-asks-to-sign-in")
    laptop.goto(f"{issuer.url}/account")
    laptop.wait_for_url(at(issuer.url, "/login"))
