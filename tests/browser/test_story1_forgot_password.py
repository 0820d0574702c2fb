"""Story 1 in a real browser: Forgot your password? on the login page, a code over real SMTP,
a new password, and on to the app the user came from."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from e2e.smtp_sink import code_in

from .conftest import at, field, press, sign_in

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a brand new passphrase 42"
CODE_SUBJECT = "Your verification code"
CHANGED = "Your password has been changed."


def ask_for_code(page, issuer, username: str) -> None:
    """On /forgot-password: type the name and press Send code."""
    page.wait_for_url(f"{issuer.url}/forgot-password")
    field(page, "username").fill(username)
    press(page, "Send code")
    page.wait_for_url(at(issuer.url, "/forgot-password/confirm"))


def submit_code(page, code: str, password: str = NEW_PASSWORD) -> None:
    """On /forgot-password/confirm: paste the code, type the new password twice, Submit."""
    field(page, "code").fill(code)
    field(page, "password").fill(password)
    field(page, "password_confirm").fill(password)
    press(page, "Submit")


def test_forgot_password_from_the_apps_login_page_ends_signed_in_to_the_app(
        page, mailbox, issuer, demo_app, alice, screenshot):
    page.goto(demo_app.url + "/reports?year=2031")
    page.wait_for_url(re.compile(re.escape(issuer.url) + r"/login\?"))
    screenshot(page, "login")

    page.get_by_role("link", name="Forgot your password?", exact=True).click()
    expect(page.get_by_role("heading", name="Forgot your password?")).to_be_visible()
    screenshot(page, "forgot-password")
    ask_for_code(page, issuer, "alice")
    assert page.url == f"{issuer.url}/forgot-password/confirm?username=alice"
    expect(field(page, "username")).to_have_value("alice")
    expect(page.locator("main")).to_contain_text("Spam")
    expect(page.get_by_role("button", name="Resend code", exact=True)).to_be_visible()
    screenshot(page, "confirm")

    code = code_in(mailbox.wait("alice@example.com", CODE_SUBJECT))
    submit_code(page, code)
    page.wait_for_url(f"{issuer.url}/login?reset=done")
    expect(page.get_by_role("status")).to_have_text(CHANGED)
    screenshot(page, "password-changed")

    sign_in(page, "alice", NEW_PASSWORD)
    page.wait_for_url(demo_app.url + "/reports?year=2031")
    expect(page.locator("#user-name")).to_have_text("Alice Example")
    screenshot(page, "back-in-the-app")
    notice = mailbox.wait("alice@example.com", "Your password was changed")
    assert code not in mailbox.text(notice)


def test_the_old_password_no_longer_signs_in_after_the_reset(
        page, mailbox, issuer, alice, screenshot):
    page.goto(f"{issuer.url}/forgot-password")
    ask_for_code(page, issuer, "alice")
    submit_code(page, code_in(mailbox.wait("alice@example.com", CODE_SUBJECT)))
    page.wait_for_url(f"{issuer.url}/login?reset=done")

    sign_in(page, *alice)
    expect(page.get_by_role("alert")).to_have_text("Incorrect user name or password.")
    screenshot(page, "old-password-refused")
    sign_in(page, "alice", NEW_PASSWORD)
    page.wait_for_url(f"{issuer.url}/account")
    expect(page.get_by_role("heading", level=1)).to_have_text("Alice Example")


@pytest.mark.issuer_settings(RESEND_INTERVAL=1)
def test_resend_code_sends_a_fresh_code_that_replaces_the_first(
        page, mailbox, issuer, alice, screenshot):
    """Typed as an email address this time; Resend code waits RESEND_INTERVAL after a send."""
    page.goto(f"{issuer.url}/login")
    page.get_by_role("link", name="Forgot your password?", exact=True).click()
    ask_for_code(page, issuer, "alice@example.com")
    first = code_in(mailbox.wait("alice@example.com", CODE_SUBJECT))

    page.wait_for_timeout(1100)  # RESEND_INTERVAL has passed since Send code
    press(page, "Resend code")
    expect(page.get_by_role("status")).to_have_text(
        "We sent a new code. It replaces the one before.")
    screenshot(page, "code-resent")
    second = code_in(mailbox.wait("alice@example.com", CODE_SUBJECT, count=2))

    if second != first:  # one chance in a million that the fresh code repeats the old one
        submit_code(page, first)
        expect(page.locator(".field.has-error")).to_contain_text("This code is not valid")
        screenshot(page, "first-code-refused")
    submit_code(page, second)
    page.wait_for_url(f"{issuer.url}/login?reset=done")
    sign_in(page, "alice", NEW_PASSWORD)
    page.wait_for_url(f"{issuer.url}/account")


def test_resend_code_too_soon_says_how_long_to_wait(page, mailbox, issuer, alice):
    page.goto(f"{issuer.url}/forgot-password")
    ask_for_code(page, issuer, "alice")
    mailbox.wait("alice@example.com", CODE_SUBJECT)
    press(page, "Resend code")
    expect(page.get_by_role("status")).to_contain_text(
        re.compile(r"You can ask for a new one in \d+ seconds?\."))
    expect(field(page, "username")).to_have_value("alice")
