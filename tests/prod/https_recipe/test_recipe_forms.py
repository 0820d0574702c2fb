"""Every form the SPEC names, in Chromium, over https behind nginx: sign-in, the second step,
sign out, forgot password (Send code, Submit), the forced password change, and the Users
module's Reset with its confirmation."""
from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from playwright.sync_api import expect

from browser.conftest import Mailbox, field
from e2e.smtp_sink import code_in
from prodkit import PASSWORD
from https_recipe.pages import (ISSUER, admin_api, hosted, post_by, posted, sign_in_to_account,
                          signs_in, submit)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

NEW_PASSWORD = "a quiet harbour at dawn 7"


def test_sign_in_account_pages_second_step_and_sign_out(recipe, browse):
    page = browse()
    posts = []
    page.on("request", lambda r: posts.append(r) if r.method == "POST" else None)
    sign_in_to_account(page, "alice")
    expect(page.get_by_role("heading", level=1)).to_have_text("Alice Example")
    cookie = next(c for c in page.context.cookies(ISSUER) if c["name"] == "__Host-authserver")
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    # The form post carried its same-origin Referer (what the CSRF check needs) and Origin.
    login_post = next(r for r in posts if urlsplit(r.url).path == "/login")
    headers = login_post.all_headers()
    assert headers.get("referer", "").startswith(f"{ISSUER}/login"), headers
    assert headers.get("origin") == ISSUER, headers

    # The second step: enrol an authenticator app at /account/mfa.
    page.goto(f"{ISSUER}/account/mfa")
    uri = page.locator('a[href^="otpauth://"]').first.get_attribute("href")
    totp = pyotp.TOTP(parse_qs(urlsplit(uri).query)["secret"][0])
    step = int(time.time()) // 30
    field(page, "code").fill(totp.at(step * 30))
    submit(page, "code")

    # Sign out ("Sign out?" button), then sign in again with the password and a code.
    page.goto(f"{ISSUER}/logout")
    post_by(page, "Sign out")
    page.goto(f"{ISSUER}/account")
    page.wait_for_url(hosted("/login"))
    signs_in(page, "alice", PASSWORD)
    page.wait_for_url(hosted("/login/mfa"))
    later = max(int(time.time()) // 30, step + 1)  # a code is good once per time step
    field(page, "code").fill(totp.at(later * 30))
    submit(page, "code")
    page.wait_for_url(hosted("/account"))

    # The account page's sessions: sign out everywhere (a form post).
    posted(page, page.get_by_role("button", name=re.compile("sign out everywhere", re.I)).click)
    page.goto(f"{ISSUER}/account")
    page.wait_for_url(hosted("/login"))


def test_forgot_password_send_code_and_submit(recipe, browse, mailbox):
    page = browse()
    page.goto(f"{ISSUER}/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.wait_for_url(hosted("/forgot-password"))
    field(page, "username").fill("bob")
    post_by(page, "Send code")
    page.wait_for_url(hosted("/forgot-password/confirm"))
    expect(field(page, "username")).to_have_value("bob")
    code = code_in(mailbox.wait("bob@example.com", "verification code", timeout=15))
    field(page, "code").fill(code)
    field(page, "password").fill(NEW_PASSWORD)
    field(page, "password_confirm").fill(NEW_PASSWORD)
    post_by(page, "Submit")
    page.wait_for_url(hosted("/login"))
    expect(page.get_by_role("status")).to_have_text("Your password has been changed.")
    signs_in(page, "bob", NEW_PASSWORD)
    page.wait_for_url(hosted("/account"))


def test_temporary_password_forces_a_new_one(recipe, browse, mailbox):
    """A user created through the admin API gets a temporary password and must change it."""
    created = admin_api(recipe).post(f"{ISSUER}/api/admin/users", json={
        "username": "tess", "email": "tess@example.com", "name": "Tess Example"}, timeout=10)
    assert created.status_code == 201, created.text
    text = Mailbox.text(mailbox.wait("tess@example.com", "temporary password", timeout=15))
    temporary = re.search(r"temporary password:\s*\n\s*\n\s*(\S+)\s*\n", text).group(1)
    assert f"{ISSUER}/login" in text
    page = browse()
    page.goto(f"{ISSUER}/login")
    signs_in(page, "tess", temporary)
    page.wait_for_url(hosted("/change-password"))
    field(page, "password").fill(NEW_PASSWORD)
    field(page, "password_confirm").fill(NEW_PASSWORD)
    submit(page, "password_confirm")
    page.wait_for_url(hosted("/account"))


def test_users_module_reset_with_its_confirmation(recipe, browse, mailbox):
    page = browse()
    sign_in_to_account(page, "root")
    page.goto(f"{ISSUER}/admin/users")
    field(page, "q").fill("caro")
    field(page, "q").press("Enter")
    page.get_by_role("link", name="View profile", exact=True).click()
    page.wait_for_url(re.compile(re.escape(ISSUER) + r"/admin/users/\d+$"))
    asked = []
    page.on("dialog", lambda d: (asked.append(d.message), d.accept()))
    post_by(page, "Reset")
    assert asked and asked[0].startswith("Reset the password of carol"), asked
    expect(page.get_by_role("status")).to_contain_text("Password reset for carol")
    text = Mailbox.text(mailbox.wait("carol@example.com", "reset your password", timeout=15))
    assert f"{ISSUER}/forgot-password/confirm?username=carol" in text  # links name the issuer
    # Without script: the in-page confirmation and its OK.
    bare = browse(java_script_enabled=False)
    sign_in_to_account(bare, "root")
    bare.goto(page.url)
    post_by(bare, "Reset")
    post_by(bare, "OK")
    expect(bare.get_by_role("status")).to_contain_text("Password reset for carol")
