"""Story 4 in a real browser: a user still holding a temporary password asks for a code, sees
what anyone sees and is emailed "User password cannot be reset in the current state."; the
administrator sends a temporary password; the user signs in, must choose a new one, and reaches
the app."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from authserver.admin import services as admin
from support import PASSWORD, make_user

from .conftest import at, field, press, sign_in

pytestmark = pytest.mark.browser

SENTENCE = "User password cannot be reset in the current state."
TEMP_SUBJECT = "Your temporary password"
TEMP_LINE = re.compile(r"^\s*(\S{5}(?:-\S{5}){3})\s*$", re.MULTILINE)
NEW_PASSWORD = "my own new passphrase"


def temporary_password(mailbox, to: str, count: int = 1) -> str:
    """The temporary password on a line of its own in the `count`-th such email."""
    match = TEMP_LINE.search(mailbox.text(mailbox.wait(to, TEMP_SUBJECT, count=count)))
    assert match, "no temporary password on a line of its own"
    return match.group(1)


def invite(app, username: str, name: str) -> None:
    """An administrator created the user earlier: a temporary password, emailed, never used."""
    with app.app_context():
        admin.create_user(username, f"{username}@example.com", name)


def send_code(page, issuer, username: str) -> tuple[str, str]:
    """Forgot your password?, the name, Send code; the confirm page's URL and text, name-blind."""
    page.get_by_role("link", name="Forgot your password?", exact=True).click()
    field(page, "username").fill(username)
    press(page, "Send code")
    page.wait_for_url(at(issuer.url, "/forgot-password/confirm"))
    return page.url.replace(username, "NAME"), page.locator("main").inner_text()


def what_anyone_sees(page, issuer) -> set[tuple[str, str]]:
    """The confirm page for an account that can reset and for a name without an account."""
    seen = set()
    for name in ("alice", "nobody"):
        page.goto(f"{issuer.url}/login")
        seen.add(send_code(page, issuer, name))
    return seen


def admin_sends_a_temporary_password(page, issuer, screenshot) -> None:
    """Users module: search, View profile, Send temporary password, OK in the dialog."""
    page.goto(f"{issuer.url}/login")
    sign_in(page, "root", PASSWORD)
    page.wait_for_url(f"{issuer.url}/account")
    page.goto(f"{issuer.url}/admin/users")
    field(page, "q").fill("tess")
    field(page, "q").press("Enter")
    page.get_by_role("link", name="View profile", exact=True).click()
    page.wait_for_url(re.compile(r".*/admin/users/\d+$"))  # loaded: admin.js (deferred) is ready
    page.on("dialog", lambda d: d.accept())
    press(page, "Send temporary password")
    expect(page.get_by_role("status")).to_contain_text(
        "A temporary password was emailed to tess@example.com.")
    screenshot(page, "admin-sent-temporary-password")


def test_a_temporary_password_holder_gets_the_cannot_reset_email_then_a_new_temporary_one(
        page, mailbox, issuer, demo_app, new_context, screenshot):
    invite(issuer.app, "tess", "Tess Tempest")
    lost_temporary = temporary_password(mailbox, "tess@example.com")
    make_user(issuer.app, "alice", name="Alice Example")
    make_user(issuer.app, "root", name="Root Admin", admin=True)
    anyone = what_anyone_sees(new_context().new_page(), issuer)
    assert len(anyone) == 1

    page.goto(demo_app.url + "/")
    page.wait_for_url(at(issuer.url, "/login"))
    assert send_code(page, issuer, "tess") in anyone
    screenshot(page, "confirm-same-as-anyone")
    notice = mailbox.wait("tess@example.com", "cannot be reset")
    assert SENTENCE in mailbox.text(notice).splitlines()
    assert "contact the administrator" in mailbox.text(notice)
    assert SENTENCE in mailbox.html(notice)
    assert not mailbox.inbox.to("tess@example.com", "Your verification code")

    desk = new_context().new_page()
    admin_sends_a_temporary_password(desk, issuer, screenshot)
    temporary = temporary_password(mailbox, "tess@example.com", count=2)
    assert temporary != lost_temporary
    assert temporary not in desk.content()

    page.goto(demo_app.url + "/")
    sign_in(page, "tess", lost_temporary)
    expect(page.get_by_role("alert")).to_contain_text("Incorrect user name or password.")
    sign_in(page, "tess", temporary)
    page.wait_for_url(f"{issuer.url}/change-password")
    screenshot(page, "change-password")
    field(page, "password").fill(NEW_PASSWORD)
    field(page, "password_confirm").fill(NEW_PASSWORD)
    page.locator("main form").get_by_role("button").click()  # SPEC names no label for it
    page.wait_for_url(demo_app.url + "/")
    expect(page.locator("#user-name")).to_have_text("Tess Tempest")
    screenshot(page, "in-the-app")
