"""Issue 12 in a real browser: *Sign in with LABEL* with real OpenID providers on loopback.

- A second Authserver (its own database and keys, on its own port) with a client
  registered for the first server's callback: sign in there, come back signed in to the
  linked account, and on to the relying app with a code.
- oidc-provider-mock (PyPI): Connect from /account, an unlinked identity whose email
  matches an account refused, --create-users with an allowed and a refused domain.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from support import LiveServer, base_settings, free_port, give_totp, make_client, make_user
from upstreamkit import mock_provider

from authserver import create_app
from authserver.accounts import upstreams
from authserver.accounts.factors import upstream as flow
from authserver.accounts.models import User
from authserver.extensions import db
from authserver.schema import init_schema
from authserver.tokens.keyfiles import write_key_set
from authserver.tokens.keyring import start_app
from authserver.tokens.keyset import new_key_set

from .conftest import at, copy_to_docs, field, press, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _fresh_cache():
    flow.forget_cache()
    yield
    flow.forget_cache()


@pytest.fixture
def corp(tmp_path_factory):
    """A second Authserver: its own SQLite database, keys and port, and user carol."""
    root = tmp_path_factory.mktemp("corp")
    keys = root / "keys"
    write_key_set(str(keys), new_key_set(datetime(2020, 1, 1, tzinfo=timezone.utc)))
    port = free_port()
    settings = base_settings(str(root), str(keys), f"sqlite:///{root}/corp.db")
    settings["ISSUER"] = f"http://127.0.0.1:{port}"
    app = create_app(settings)
    app.config["SESSION_COOKIE_NAME"] = "corp_session"  # same host as the first server
    init_schema(app)
    start_app(app)  # as `authserver init` and wsgi.py: the key set in its own database
    make_user(app, "carol", name="Carol Corp", email="carol@corp.example")
    server = LiveServer(app, port).start()
    yield server
    server.stop()


def subject_at(server, username):
    with server.app.app_context():
        return db.session.scalar(select(User.sub).where(User.username == username))


def test_sign_in_with_a_second_authserver_and_on_to_the_app(page, issuer, demo_app, alice,
                                                            corp, redirects, screenshot):
    client_id, secret = make_client(corp.app, "First Authserver", redirect_uris=[
        f"{issuer.url}/login/upstream/corp/callback"])
    with issuer.app.app_context():
        upstreams.add("corp", corp.url, client_id, secret, label="Corp ID")
        alice_user = db.session.scalar(select(User).where(User.username == "alice"))
        upstreams.link(alice_user, upstreams.find("corp"), subject_at(corp, "carol"))
    page.goto(demo_app.url + "/reports?year=2031")
    page.wait_for_url(re.compile(re.escape(issuer.url) + r"/login\?"))
    button = page.get_by_role("link", name="Sign in with Corp ID")
    expect(button).to_be_visible()
    path = screenshot(page, "login-with-upstream-button")
    copy_to_docs(path, "login-upstream.png")
    button.focus()  # keyboard: the button is a link reached and followed with Enter
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(re.escape(corp.url) + r"/login\?"))
    sign_in(page, "carol", "correct horse battery staple")
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


def test_missing_licence_after_the_upstream_shows_the_no_licence_page(page, issuer, alice):
    client_id, _ = make_client(issuer.app, "Payroll", requires_licence=True)
    with mock_provider([{"sub": "a1"}]) as url:
        with issuer.app.app_context():
            upstreams.add("mock", url, "authserver", "secret", label="Mock ID")
            user = db.session.scalar(select(User).where(User.username == "alice"))
            upstreams.link(user, upstreams.find("mock"), "a1")
        page.goto(f"{issuer.url}/authorize?response_type=code&client_id={client_id}"
                  "&redirect_uri=http://127.0.0.1:9999/callback&scope=openid&state=s1"
                  "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
                  "&code_challenge_method=S256")
        page.wait_for_url(at(issuer.url, "/login"))
        page.get_by_role("link", name="Sign in with Mock ID").click()
        page.get_by_role("button", name="a1").click()
        expect(page.get_by_role("heading")).to_contain_text("have a licence for Payroll")


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
