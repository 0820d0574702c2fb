"""Issue 13 in a real browser: Chromium's virtual authenticator (CDP WebAuthn domain) plays a
platform authenticator with discoverable credentials and user verification."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from authserver.accounts.models import Passkey
from authserver.extensions import db

from .conftest import at, copy_to_docs, field, press, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.issuer_settings(ISSUER_HOST="localhost")]


def virtual_authenticator(page, **options):
    """A CTAP2 platform authenticator inside this page's browser (resident keys, UV)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    result = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
        "automaticPresenceSimulation": True, **options}})
    return cdp, result["authenticatorId"]


def credentials(cdp, authenticator_id) -> list[dict]:
    return cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]


def presence(cdp, authenticator_id, enabled: bool) -> None:
    """With automatic presence off, a WebAuthn request waits (as if the user had not touched
    the sensor yet)."""
    cdp.send("WebAuthn.setAutomaticPresenceSimulation",
             {"authenticatorId": authenticator_id, "enabled": enabled})


LOGIN_OPTIONS = re.compile(r".*/login/passkey/options$")


def open_login_with_offer_waiting(page, cdp, auth_id, open_login) -> None:
    """Open the login page with its autofill offer left waiting: no presence, as if the user
    had not picked the passkey."""
    presence(cdp, auth_id, False)
    with page.expect_response(LOGIN_OPTIONS):
        open_login()


def answer_the_next_offer(page, cdp, auth_id) -> None:
    """Presence comes back only when the next passkey request asks for its options, so only
    that request is answered. Turning it on at a moment of the test's choosing would race the
    waiting offer, which can reach the authenticator late and be answered instead."""
    def present_then_continue(route):
        presence(cdp, auth_id, True)
        route.continue_()

    page.route(LOGIN_OPTIONS, present_then_continue, times=1)


def press_passkey_button(page, cdp, auth_id, open_login) -> None:
    """Open the login page with the autofill offer left waiting, then press *Sign in with a
    passkey*, which cancels the offer and asks for the passkey itself."""
    open_login_with_offer_waiting(page, cdp, auth_id, open_login)
    answer_the_next_offer(page, cdp, auth_id)
    page.get_by_role("button", name="Sign in with a passkey").click()


def stored(issuer) -> list[Passkey]:
    with issuer.app.app_context():
        rows = list(db.session.scalars(select(Passkey)))
        db.session.expunge_all()
        return rows


def add_passkey(page, issuer, name: str) -> None:
    page.goto(f"{issuer.url}/account/passkeys")
    page.locator("#passkey-name").fill(name)
    press(page, "Add a passkey")
    expect(page.locator(".flash")).to_contain_text("added")


def sign_out(page, issuer) -> None:
    page.goto(f"{issuer.url}/logout")
    press(page, "Sign out")


def test_add_a_passkey_sign_out_and_sign_in_with_it_into_an_app(page, issuer, demo_app, alice,
                                                                  screenshot):
    cdp, auth_id = virtual_authenticator(page)
    username, password = alice
    page.goto(f"{issuer.url}/login")
    sign_in(page, username, password)
    page.wait_for_url(f"{issuer.url}/account")
    add_passkey(page, issuer, "Work laptop")
    expect(page.locator(".passkeys")).to_contain_text("Work laptop")
    expect(page.locator(".passkeys")).to_contain_text("never used")
    copy_to_docs(screenshot(page, "account-passkeys"), "passkeys-account.png")
    [cred] = credentials(cdp, auth_id)
    assert cred["isResidentCredential"] is True
    [pk] = stored(issuer)
    assert pk.name == "Work laptop" and pk.credential_id == cred["credentialId"].rstrip("=")\
        .replace("+", "-").replace("/", "_")

    sign_out(page, issuer)
    press_passkey_button(page, cdp, auth_id, lambda: page.goto(demo_app.url + "/"))
    page.wait_for_url(demo_app.url + "/")
    expect(page.locator("#user-name")).to_have_text("Alice Example")
    [pk] = stored(issuer)
    [cred] = credentials(cdp, auth_id)
    assert pk.last_used_at is not None and pk.sign_count == cred["signCount"]


def test_autofill_signs_in_after_the_page_re_renders(page, issuer, alice):
    """Conditional UI: the username field offers the passkey; a wrong password re-renders the
    page and the offer is made again (the script arms it on every page show)."""
    username, password = alice
    page.goto(f"{issuer.url}/login")
    sign_in(page, username, password)
    cdp, auth_id = virtual_authenticator(page)
    add_passkey(page, issuer, "Phone")
    sign_out(page, issuer)
    open_login_with_offer_waiting(page, cdp, auth_id, lambda: page.goto(f"{issuer.url}/login"))
    assert field(page, "username").get_attribute("autocomplete") == "username webauthn"
    answer_the_next_offer(page, cdp, auth_id)  # the re-rendered page's, the first page gone
    sign_in(page, username, "not the password")
    page.wait_for_url(f"{issuer.url}/account")  # from the re-rendered page, by autofill


def test_a_passkey_as_the_second_step_after_the_password(page, issuer, alice):
    username, password = alice
    cdp, auth_id = virtual_authenticator(page)
    page.goto(f"{issuer.url}/login")
    sign_in(page, username, password)
    add_passkey(page, issuer, "Security key")
    sign_out(page, issuer)
    presence(cdp, auth_id, False)  # no autofill sign-in here: set before the page asks
    page.goto(f"{issuer.url}/login")
    sign_in(page, username, password)
    page.wait_for_url(at(issuer.url, "/login/mfa"))
    presence(cdp, auth_id, True)
    press(page, "Use a passkey")
    page.wait_for_url(f"{issuer.url}/account")


def test_a_removed_passkey_no_longer_signs_in(page, issuer, alice):
    username, password = alice
    cdp, auth_id = virtual_authenticator(page)
    page.goto(f"{issuer.url}/login")
    sign_in(page, username, password)
    add_passkey(page, issuer, "Old phone")
    page.get_by_role("button", name="Remove Old phone").click()
    expect(page.locator(".flash")).to_contain_text("removed")
    assert stored(issuer) == []
    assert len(credentials(cdp, auth_id)) == 1  # still on the device
    sign_out(page, issuer)
    press_passkey_button(page, cdp, auth_id, lambda: page.goto(f"{issuer.url}/login"))
    expect(page.locator("main")).to_contain_text("not registered")
    page.goto(f"{issuer.url}/account")
    page.wait_for_url(at(issuer.url, "/login"))


def test_a_synced_passkey_whose_counter_stays_0(page, issuer, alice):
    """A synced passkey (backup eligible and backed up) sends counter 0 at every use, as
    iCloud Keychain and Google Password Manager do: it signs in again and again. Chromium's
    virtual authenticator counts, so the test sets its counter to 2^32-1 before each use and
    the authenticator's increment wraps it to 0. Then a counter that does not go up (set back
    to 0, so the next use sends 1) is refused and recorded."""
    username, password = alice
    cdp, auth_id = virtual_authenticator(page, defaultBackupEligibility=True,
                                         defaultBackupState=True)
    page.goto(f"{issuer.url}/login")
    sign_in(page, username, password)
    add_passkey(page, issuer, "Synced")
    [registered] = stored(issuer)

    def set_counter(value: int) -> None:
        [cred] = credentials(cdp, auth_id)
        cdp.send("WebAuthn.setCredentialProperties", {
            "authenticatorId": auth_id, "credentialId": cred["credentialId"],
            "signCount": value})

    for _ in range(3):
        set_counter(2**32 - 1)
        sign_out(page, issuer)
        press_passkey_button(page, cdp, auth_id, lambda: page.goto(f"{issuer.url}/login"))
        page.wait_for_url(f"{issuer.url}/account")
        assert credentials(cdp, auth_id)[0]["signCount"] == 0  # what it sent: 0
        [pk] = stored(issuer)
        assert pk.backed_up and pk.sign_count == registered.sign_count
    assert registered.sign_count >= 1  # so a counter of 1 does not go up
    set_counter(0)
    sign_out(page, issuer)
    press_passkey_button(page, cdp, auth_id, lambda: page.goto(f"{issuer.url}/login"))
    expect(page.locator("main")).to_contain_text("did not go up")
    with issuer.app.app_context():
        from authserver.audit import SecurityEvent
        assert db.session.scalar(select(SecurityEvent).where(
            SecurityEvent.name == "passkey_counter_regressed")) is not None
