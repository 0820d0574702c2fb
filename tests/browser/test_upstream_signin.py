"""Issue 12 in a real browser: *Sign in with LABEL* with real OpenID providers on loopback.

- A second Authserver in its own gunicorn process (its own database and keys, on
  http://localhost:PORT) with a client registered for the first server's callback: sign in
  there, come back signed in to the linked account and on to the relying app with a code;
  its ID token's `amr` (with `mfa` after its own second step) decides whether our second
  step is asked (skipped only with AUTHSERVER_UPSTREAM_TRUST_MFA on); a missing licence
  ends on the no-licence page.
- oidc-provider-mock (PyPI): Connect from /account, an unlinked identity whose email
  matches an account refused, --create-users with an allowed and a refused domain.
"""
from __future__ import annotations

import re

import pyotp
import pytest
from playwright.sync_api import expect
from sqlalchemy import select, update
from support import PASSWORD, free_port, give_totp, make_client, make_user
from upstreamkit import AuthserverProcess, mock_provider

from authserver.accounts import upstreams
from authserver.accounts.factors import upstream as flow
from authserver.accounts.models import BrowserSession, User
from authserver.admin import services as admin
from authserver.extensions import db
from authserver.oauth.models import Client

from .conftest import at, copy_to_docs, field, press, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _fresh_cache():
    flow.forget_cache()
    yield
    flow.forget_cache()


@pytest.fixture
def corp(tmp_path_factory):
    """A second Authserver in its own process, with user carol; stopped by its PID after."""
    server = AuthserverProcess(tmp_path_factory.mktemp("corp"))
    try:
        server.start()
        make_user(server.app, "carol", name="Carol Corp", email="carol@corp.example")
        yield server
    finally:
        server.stop()
    assert not server.running() and not server.listening(), f"left running: {server.proc.pid}"


def subject_at(server, username):
    with server.app.app_context():
        return db.session.scalar(select(User.sub).where(User.username == username))


def user_id(app, username):
    with app.app_context():
        return db.session.scalar(select(User.id).where(User.username == username))


def corp_upstream_for_alice(issuer, corp):
    """Register `corp` at the first server as *Corp ID*; alice linked to carol there."""
    client_id, secret = make_client(corp.app, "First Authserver", redirect_uris=[
        f"{issuer.url}/login/upstream/corp/callback"])
    with issuer.app.app_context():
        upstreams.add("corp", corp.url, client_id, secret, label="Corp ID")
        alice_user = db.session.scalar(select(User).where(User.username == "alice"))
        upstreams.link(alice_user, upstreams.find("corp"), subject_at(corp, "carol"))


def sign_in_at_corp(page, corp, totp_secret=None):
    """On the first server's login page: *Sign in with Corp ID*, then carol at corp (and
    her own second step there when she has an authenticator app)."""
    page.get_by_role("link", name="Sign in with Corp ID").click()
    page.wait_for_url(re.compile(re.escape(corp.url) + r"/login\?"))
    sign_in(page, "carol", PASSWORD)
    if totp_secret:
        page.wait_for_url(at(corp.url, "/login/mfa"))
        field(page, "code").fill(pyotp.TOTP(totp_secret).now())
        press(page, "Verify")


def test_sign_in_with_a_second_authserver_and_on_to_the_app(page, issuer, demo_app, alice,
                                                            corp, redirects, screenshot):
    corp_upstream_for_alice(issuer, corp)
    page.goto(demo_app.url + "/reports?year=2031")
    page.wait_for_url(re.compile(re.escape(issuer.url) + r"/login\?"))
    button = page.get_by_role("link", name="Sign in with Corp ID")
    expect(button).to_be_visible()
    path = screenshot(page, "login-with-upstream-button")
    copy_to_docs(path, "login-upstream.png")
    button.focus()  # keyboard: the button is a link reached and followed with Enter
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(re.escape(corp.url) + r"/login\?"))
    sign_in(page, "carol", PASSWORD)
    page.wait_for_url(demo_app.url + "/reports?year=2031")
    expect(page.locator("#user-name")).to_have_text("Alice Example")
    assert any(h.location.startswith(demo_app.url + "/callback?code=")
               for h in redirects.from_origin(issuer.url)), redirects.hops


def test_connect_then_sign_in_and_refusals(page, issuer, alice, screenshot):
    with mock_provider([
            {"sub": "alice-at-mock", "email": "someone@else.example", "email_verified": True},
            {"sub": "impostor", "email": "alice@example.com", "email_verified": True},
            {"sub": "newcomer", "email": "new@corp.example", "email_verified": True},
            {"sub": "outsider", "email": "out@other.example", "email_verified": True}]) as url:
        with issuer.app.app_context():
            upstreams.add("mock", url, "authserver", "secret", label="Mock ID",
                          create_users=True, domains=["corp.example"])
        page.goto(f"{issuer.url}/login")
        sign_in(page, *alice)
        page.wait_for_url(f"{issuer.url}/account")
        press(page, "Connect Mock ID")
        page.wait_for_url(re.compile(re.escape(url) + r"/oauth2/authorize"))
        page.get_by_role("button", name="alice-at-mock").click()
        page.wait_for_url(f"{issuer.url}/account")
        expect(page.locator("main")).to_contain_text("connected")
        expect(page.get_by_role("button", name="Disconnect Mock ID")).to_be_visible()
        screenshot(page, "connected")
        page.goto(f"{issuer.url}/logout")
        press(page, "Sign out")

        def upstream_as(sub):
            page.goto(f"{issuer.url}/login")
            page.get_by_role("link", name="Sign in with Mock ID").click()
            page.wait_for_url(re.compile(re.escape(url) + r"/oauth2/authorize"))
            page.get_by_role("button", name=sub).click()

        upstream_as("alice-at-mock")
        page.wait_for_url(f"{issuer.url}/account")
        expect(page.locator("main")).to_contain_text("alice")
        page.goto(f"{issuer.url}/logout")
        press(page, "Sign out")

        upstream_as("impostor")  # alice's email, never linked: refused
        expect(page.get_by_role("heading")).to_contain_text("No account is connected")
        screenshot(page, "not-linked")
        page.goto(f"{issuer.url}/account")
        page.wait_for_url(at(issuer.url, "/login"))

        upstream_as("outsider")  # --create-users, a domain not allowed
        expect(page.get_by_role("heading")).to_contain_text("No account is connected")

        upstream_as("newcomer")  # --create-users, an allowed domain
        page.wait_for_url(f"{issuer.url}/account")
        expect(page.locator("main")).to_contain_text("new@corp.example")


def test_disabled_account_and_second_step_after_the_upstream(page, issuer, alice):
    with mock_provider([{"sub": "a1"}]) as url:
        with issuer.app.app_context():
            upstreams.add("mock", url, "authserver", "secret", label="Mock ID")
            user = db.session.scalar(select(User).where(User.username == "alice"))
            upstreams.link(user, upstreams.find("mock"), "a1")
            uid = user.id
        give_totp(issuer.app, uid)
        page.goto(f"{issuer.url}/login")
        page.get_by_role("link", name="Sign in with Mock ID").click()
        page.get_by_role("button", name="a1").click()
        page.wait_for_url(at(issuer.url, "/login/mfa"))
        expect(field(page, "code")).to_be_visible()
        with issuer.app.app_context():
            db.session.get(User, uid).state = "disabled"
            db.session.commit()
        page.goto(f"{issuer.url}/login")
        page.get_by_role("link", name="Sign in with Mock ID").click()
        page.get_by_role("button", name="a1").click()
        expect(page.get_by_role("heading")).to_contain_text("inactive")


TRUST_MFA = pytest.mark.issuer_settings(UPSTREAM_TRUST_MFA=True)


@pytest.mark.parametrize("carol_has_totp, asked", [
    pytest.param(True, False, marks=TRUST_MFA, id="upstream-mfa-trusted-skips"),
    pytest.param(True, True, id="upstream-mfa-not-trusted-asks"),
    pytest.param(False, True, marks=TRUST_MFA, id="trusted-but-no-upstream-mfa-asks"),
])
def test_second_step_after_the_second_authserver(page, issuer, alice, corp, redirects,
                                                 carol_has_totp, asked):
    """alice has an authenticator app here. Carol's sign-in at corp, with corp's own second
    step, gives an ID token whose amr has mfa; ours is then skipped only when the first
    server trusts upstream mfa (AUTHSERVER_UPSTREAM_TRUST_MFA), and asked otherwise."""
    corp_upstream_for_alice(issuer, corp)
    alice_secret = give_totp(issuer.app, user_id(issuer.app, "alice"))
    carol_secret = give_totp(corp.app, user_id(corp.app, "carol")) if carol_has_totp else None
    page.goto(f"{issuer.url}/login")
    sign_in_at_corp(page, corp, carol_secret)
    if asked:
        page.wait_for_url(at(issuer.url, "/login/mfa"))
        other = page.context.new_page()  # the same browser is not signed in yet
        other.goto(f"{issuer.url}/account")
        other.wait_for_url(at(issuer.url, "/login"))
        other.close()
        field(page, "code").fill(pyotp.TOTP(alice_secret).now())
        press(page, "Verify")
    page.wait_for_url(f"{issuer.url}/account")
    expect(page.locator("main")).to_contain_text("alice")
    assert redirects.visited(issuer.url, "/login/mfa") is asked
    with issuer.app.app_context():  # the session's amr: whose second step it was
        amr = db.session.scalar(select(BrowserSession.amr).where(
            BrowserSession.user_id == user_id(issuer.app, "alice")))
    assert "fed" in amr and "mfa" in amr
    assert ("otp" in amr) is asked


def test_missing_licence_after_the_second_authserver_shows_the_no_licence_page(
        page, issuer, demo_app, alice, corp, redirects):
    corp_upstream_for_alice(issuer, corp)
    with issuer.app.app_context():
        db.session.execute(update(Client).where(Client.client_id == demo_app.client_id)
                           .values(requires_licence=True))
        db.session.commit()
    page.goto(demo_app.url + "/reports")
    page.wait_for_url(re.compile(re.escape(issuer.url) + r"/login\?"))
    sign_in_at_corp(page, corp)
    expect(page.get_by_role("heading")).to_contain_text("have a licence for Demo app")
    expect(page.locator("main")).to_contain_text("signed in as alice")
    assert not any(h.location.startswith(demo_app.url) for h in redirects.from_origin(issuer.url))
    with issuer.app.app_context():  # the administrator gives the licence: on to the app
        user = db.session.scalar(select(User).where(User.username == "alice"))
        admin.set_licence(user, demo_app.client_id, True, None)
    page.goto(demo_app.url + "/reports")
    page.wait_for_url(demo_app.url + "/reports")
    expect(page.locator("#user-name")).to_have_text("Alice Example")


def test_upstream_down_leaves_the_password_form_working(page, issuer, alice):
    with issuer.app.app_context():
        upstreams.add("gone", f"http://127.0.0.1:{free_port()}", "c", "s", label="Gone ID")
    page.goto(f"{issuer.url}/login")
    page.get_by_role("link", name="Sign in with Gone ID").click()
    expect(page.get_by_role("heading")).to_contain_text("did not work")
    expect(page.locator("main")).to_contain_text("could not be reached")
    page.get_by_role("link", name="Back to sign in").click()
    sign_in(page, *alice)
    page.wait_for_url(f"{issuer.url}/account")
