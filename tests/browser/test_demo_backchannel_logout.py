"""The demo app hears of a session that ended at the issuer (back-channel logout) and ends its
own: the next page it serves sends the browser to sign in again."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from authserver.accounts import services as accounts
from authserver.admin import services as admin
from authserver.extensions import db
from authserver.mail.sender import TRANSPORT_EXT, send_pending
from authserver.oauth import services as oauth
from authserver.security import random_token

from .conftest import sign_in

pytestmark = pytest.mark.browser


def test_the_demo_app_ends_its_session_when_the_issuer_says_so(page, issuer, demo_app, alice):
    with issuer.app.app_context():
        client = oauth.query_client(demo_app.client_id)
        oauth.set_backchannel_logout_uri(client, demo_app.url + "/backchannel-logout")
        db.session.commit()
    page.goto(demo_app.url + "/")
    sign_in(page, *alice)
    page.wait_for_url(demo_app.url + "/")
    expect(page.get_by_text("Alice Example").first).to_be_visible()

    with issuer.app.app_context():
        admin.revoke_sessions(accounts.find_by_login("alice"), None)
    attempted, sent = send_pending(issuer.app, issuer.app.extensions[TRANSPORT_EXT])
    assert (attempted, sent) == (1, 1)

    page.goto(demo_app.url + "/")
    page.wait_for_url(re.compile(re.escape(issuer.url) + r"/login\?"))


def test_the_demo_app_refuses_a_forged_logout_token(page, demo_app):
    resp = page.request.post(demo_app.url + "/backchannel-logout",
                             form={"logout_token": random_token(40)})
    assert resp.status == 400
