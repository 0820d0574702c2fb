"""Issue 10 in a real browser: the enrolment page shows a QR code drawn on the page (no
outside service), the key as text and the otpauth:// link; a sign-in then asks for a code;
the same code typed in a second browser is refused (RFC 6238 section 5.2)."""
from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from playwright.sync_api import expect

from .conftest import at, field, press, sign_in

pytestmark = pytest.mark.browser


def test_enrol_with_the_qr_page_then_sign_in_with_a_code(page, issuer, alice, new_context,
                                                          screenshot):
    username, password = alice
    origins = set()
    page.on("request", lambda r: origins.add("{0.scheme}://{0.netloc}".format(urlsplit(r.url))))
    page.goto(f"{issuer.url}/login")
    sign_in(page, username, password)
    page.wait_for_url(f"{issuer.url}/account")
    page.get_by_role("link", name="Manage").click()
    page.wait_for_url(f"{issuer.url}/account/mfa")
    qr = page.locator("#qr svg")
    expect(qr).to_be_visible()
    assert qr.bounding_box()["width"] >= 100 and page.locator("#qr svg path").count() >= 1
    secret = page.locator("#totp-secret").inner_text().strip()
    link = page.locator("#otpauth-link").get_attribute("href")
    assert link.startswith("otpauth://totp/") and parse_qs(urlsplit(link).query)["secret"] == \
        [secret]
    screenshot(page, "enrolment")
    field(page, "code").fill(pyotp.TOTP(secret).now())
    press(page, "Turn on two-step sign-in")
    codes = page.locator("#recovery-codes code")
    expect(codes).to_have_count(10)
    page.get_by_role("link", name="Continue").click()
    page.wait_for_url(f"{issuer.url}/account")
    assert origins == {issuer.url}, origins

    page.goto(f"{issuer.url}/logout")
    press(page, "Sign out")
    page.goto(f"{issuer.url}/login")
    sign_in(page, username, password)
    page.wait_for_url(at(issuer.url, "/login/mfa"))
    code = pyotp.TOTP(secret).at(time.time() + 30)  # the enrolment used this step's code
    field(page, "code").fill(code)
    press(page, "Verify")
    page.wait_for_url(f"{issuer.url}/account")

    other = new_context().new_page()
    other.goto(f"{issuer.url}/login")
    sign_in(other, username, password)
    other.wait_for_url(at(issuer.url, "/login/mfa"))
    field(other, "code").fill(code)
    press(other, "Verify")
    expect(other.locator("main")).to_contain_text("not right")
    assert other.url.endswith("/login/mfa")
