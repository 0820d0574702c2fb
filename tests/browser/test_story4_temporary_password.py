"""Story 4 in a real browser: a user still holding a temporary password asks for a code, sees
what anyone sees and is emailed "User password cannot be reset in the current state."; the
administrator sends a temporary password; the user signs in, must choose a new one, reaches the
app."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from authserver.admin import services as admin
from support import PASSWORD, make_user

from .conftest import sign_in

pytestmark = pytest.mark.browser

SENTENCE = "User password cannot be reset in the current state."
TEMP_SUBJECT = "Your temporary password"
TEMP_LINE = re.compile(r"^\s*(\S{5}(?:-\S{5}){3})\s*$", re.MULTILINE)
NEW_PASSWORD = "my own new passphrase"


def field(page, name: str):
    return page.locator(f'input[name="{name}"]:visible')


def click(page, label: str) -> None:
    page.get_by_role("button", name=label, exact=True).click()


def at(issuer, path: str) -> re.Pattern:
    return re.compile(re.escape(issuer.url + path) + r"(\?.*)?$")


def temporary_password(mailbox, to: str, count: int = 1) -> str:
    match = TEMP_LINE.search(mailbox.text(mailbox.wait(to, TEMP_SUBJECT, count=count)))
    assert match, "no temporary password on a line of its own"
    return match.group(1)


def invite(app, username: str, name: str) -> None:
    """An administrator created the user earlier: an emailed temporary password, unused."""
    with app.app_context():
        admin.create_user(username, f"{username}@example.com", name)


def confirm_page_for(page, issuer, username: str) -> tuple[str, str]:
    """Forgot your password? from the login page, Send code; (confirm URL, page text)."""
    page.goto(f"{issuer.url}/login")
    page.get_by_role("link", name="Forgot your password?", exact=True).click()
    field(page, "username").fill(username)
    click(page, "Send code")
    page.wait_for_url(at(issuer, "/forgot-password/confirm"))
    return page.url.replace(username, "NAME"), page.locator("main").inner_text()


def test_a_temporary_password_holder_gets_the_cannot_reset_email_then_a_new_temporary_one(
        page, mailbox, issuer, demo_app, new_context, screenshot):
    invite(issuer.app, "tess", "Tess Tempest")
    first_temporary = temporary_password(mailbox, "tess@example.com")
    make_user(issuer.app, "alice", name="Alice Example")
    make_user(issuer.app, "root", name="Root Admin", admin=True)

    # Anyone's confirm page looks the same: an account that can reset, and no account at all.
    stranger = new_context().new_page()
    expected = {confirm_page_for(stranger, issuer, name) for name in ("alice", "nobody")}
    assert len(expected) == 1

    page.goto(demo_app.url + "/")
    page.wait_for_url(at(issuer, "/login"))
    page.get_by_role("link", name="Forgot your password?", exact=True).click()
    screenshot(page, "forgot-password")
    field(page, "username").fill("tess")
    click(page, "Send code")
    page.wait_for_url(at(issuer, "/forgot-password/confirm"))
    assert (page.url.replace("tess", "NAME"), page.locator("main").inner_text()) in expected
    screenshot(page, "confirm-same-as-anyone")

    notice = mailbox.wait("tess@example.com", "cannot be reset")
    assert SENTENCE in mailbox.text(notice).splitlines()
    assert re.search(r"contact the administrator", mailbox.text(notice))
    assert SENTENCE in mailbox.html(notice)
    assert not mailbox.inbox.to("tess@example.com", "Your verification code")

    # The administrator sends a temporary password from the Users module.
    desk = new_context().new_page()
    desk.goto(f"{issuer.url}/login")
    sign_in(desk, "root", PASSWORD)
    desk.wait_for_url(f"{issuer.url}/account")
    desk.goto(f"{issuer.url}/admin/users")
    field(desk, "q").fill("tess")
    field(desk, "q").press("Enter")
    desk.get_by_role("link", name="View profile", exact=True).click()
    desk.on("dialog", lambda d: d.accept())
    click(desk, "Send temporary password")
    expect(desk.get_by_role("status")).to_contain_text(
        "A temporary password was emailed to tess@example.com.")
    screenshot(desk, "admin-sent-temporary-password")
    temporary = temporary_password(mailbox, "tess@example.com", count=2)
    assert temporary != first_temporary
    assert temporary not in desk.content()

    # Tess signs in with it from the app, must choose a new password, and reaches the app.
    page.goto(demo_app.url + "/")
    sign_in(page, "tess", first_temporary)
    expect(page.get_by_role("alert")).to_contain_text("Incorrect user name or password.")
    sign_in(page, "tess", temporary)
    page.wait_for_url(f"{issuer.url}/change-password")
    screenshot(page, "change-password")
    field(page, "password").fill(NEW_PASSWORD)
    field(page, "password_confirm").fill(NEW_PASSWORD)
    page.locator('main form button[type="submit"], main form input[type="submit"]').click()
    page.wait_for_url(demo_app.url + "/")
    expect(page.locator("#user-name")).to_have_text("Tess Tempest")
    screenshot(page, "in-the-app")
