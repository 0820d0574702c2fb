"""Story 3 in a real browser: the demo app's pop-up, /refresh, and back to the same page."""
from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from authserver import clock
from authserver.admin import services as admin
from authserver.accounts import services as accounts
from authserver.extensions import db
from authserver.passwords import codes
from authserver.passwords import services as passwords

from .conftest import copy_to_docs, save_measure, sign_in

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a brand new passphrase 42"


def start_signed_in(page, demo_app, alice, path="/reports?year=2031") -> str:
    """Open a demo page, sign in at the issuer, and come back to it; returns its URL."""
    start = demo_app.url + path
    page.goto(start)
    sign_in(page, *alice)
    expect(page).to_have_url(start)
    expect(page.locator("#user-name")).to_have_text("Alice Example")
    return start


def popup(page):
    return page.get_by_role("dialog", name="Your session has expired")


def issuer_paths(redirects, issuer) -> list[str]:
    return [urlsplit(h.url).path for h in redirects.from_origin(issuer.url)]


@pytest.mark.issuer_settings(ACCESS_TOKEN_TTL=4)
def test_refresh_goes_back_to_the_same_page_with_a_new_token_without_the_login_page(
        page, issuer, demo_app, alice, redirects, screenshot):
    start = start_signed_in(page, demo_app, alice)
    first_token = page.locator("#token-id").inner_text()
    expect(popup(page)).to_be_visible(timeout=10_000)
    refresh = page.get_by_role("button", name="Refresh", exact=True)
    expect(refresh).to_be_focused()
    path = screenshot(page, "session-expired-popup")
    copy_to_docs(path, "session-expired-popup.png")

    redirects.clear()
    refresh.click()
    page.wait_for_url(start)
    expect(popup(page)).to_have_count(0)
    expect(page.locator("#token-id")).not_to_have_text(first_token)
    assert not redirects.visited(issuer.url, "/login")
    assert issuer_paths(redirects, issuer) == ["/refresh"]
    hops = [(h.status, h.url.split("?")[0]) for h in redirects.hops]
    save_measure("refresh_live_session", {"issuer_redirects": len(issuer_paths(redirects, issuer)),
                                          "all_redirects": len(hops), "hops": hops})
    assert len(redirects.from_origin(issuer.url)) <= 2
    copy_to_docs(screenshot(page, "back-on-the-same-page"), "demo-app-after-refresh.png")


@pytest.mark.issuer_settings(ACCESS_TOKEN_TTL=2)
def test_the_popup_is_an_accessible_modal_that_escape_does_not_dismiss(
        page, issuer, demo_app, alice):
    start_signed_in(page, demo_app, alice)
    dialog = popup(page)
    expect(dialog).to_be_visible(timeout=10_000)
    expect(dialog).to_have_attribute("aria-modal", "true")
    refresh = page.get_by_role("button", name="Refresh", exact=True)
    page.evaluate("""() => { window.hintChanges = 0;
        new MutationObserver(() => window.hintChanges++).observe(
            document.querySelector('.sr-hint'), {childList: true, characterData: true,
                                                 subtree: true}); }""")
    for _ in range(3):
        page.keyboard.press("Escape")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("stays open until you select Refresh")
    expect(dialog).not_to_contain_text("sign in again")
    assert page.evaluate("window.hintChanges") == 1  # said once, not again at every Escape
    for key in ("Tab", "Shift+Tab", "Tab"):
        page.keyboard.press(key)
        expect(refresh).to_be_focused()
    # The page behind is inert: its links can neither be clicked nor reached.
    expect(page.locator("header.top")).to_have_attribute("inert", "")


@pytest.mark.issuer_settings(ACCESS_TOKEN_TTL=3)
def test_a_401_from_the_apps_api_opens_the_popup(page, issuer, demo_app, alice):
    """The app calls SessionRefresh.expired() when its API answers 401."""
    start_signed_in(page, demo_app, alice, "/")
    page.evaluate("SessionRefresh.setExpiresAt(Date.now() + 3600 * 1000)")  # timer out of play
    page.get_by_role("button", name="Call /userinfo").click()
    expect(page.locator("#userinfo-result")).to_contain_text('"preferred_username": "alice"')
    page.wait_for_timeout(3500)
    expect(popup(page)).to_have_count(0)
    page.get_by_role("button", name="Call /userinfo").click()
    expect(popup(page)).to_be_visible()


@pytest.mark.issuer_settings(ACCESS_TOKEN_TTL=2, REFRESH_TOKEN_TTL=5)
def test_after_the_family_expires_refresh_goes_through_the_login_page_and_back(
        page, issuer, demo_app, alice, redirects, screenshot):
    start = start_signed_in(page, demo_app, alice)
    signed_in_at = time.monotonic()  # the session started a little before: safe side
    first_token = page.locator("#token-id").inner_text()
    expect(popup(page)).to_be_visible(timeout=10_000)
    page.wait_for_timeout(max(0, int((signed_in_at + 5.5 - time.monotonic()) * 1000)))
    redirects.clear()
    page.get_by_role("button", name="Refresh", exact=True).click()
    page.wait_for_url(re.compile(re.escape(issuer.url) + r"/login\?"))
    screenshot(page, "login-after-family-expired")
    sign_in(page, *alice)
    page.wait_for_url(start)
    expect(page.locator("#token-id")).not_to_have_text(first_token)
    assert issuer_paths(redirects, issuer).count("/refresh") == 2  # to login, then to the app


def revoke_by_password_reset(app, user_id):
    with app.app_context():
        user = accounts.get_user(user_id)
        code = codes.issue_code(user, clock.now())
        db.session.commit()
        passwords.confirm_reset(user.username, code, NEW_PASSWORD)
    return NEW_PASSWORD


def revoke_by_admin(app, user_id):
    with app.app_context():
        admin.revoke_sessions(accounts.get_user(user_id), actor_id=None)
    return None


@pytest.mark.parametrize("revoke", [revoke_by_password_reset, revoke_by_admin],
                         ids=["password-reset", "admin-revoke"])
@pytest.mark.issuer_settings(ACCESS_TOKEN_TTL=3)
def test_after_sessions_are_revoked_refresh_leads_to_the_login_page(
        page, issuer, demo_app, alice, redirects, revoke):
    start = start_signed_in(page, demo_app, alice)
    with issuer.app.app_context():
        user_id = accounts.find_by_login("alice").id
    new_password = revoke(issuer.app, user_id)
    expect(popup(page)).to_be_visible(timeout=10_000)
    redirects.clear()
    page.get_by_role("button", name="Refresh", exact=True).click()
    page.wait_for_url(re.compile(re.escape(issuer.url) + r"/login\?"))
    assert not redirects.visited(demo_app.url, "/callback")
    sign_in(page, "alice", new_password or alice[1])
    page.wait_for_url(start)
