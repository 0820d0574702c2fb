"""SPEC story 2 through the pages, without a browser (tests/browser/ drives the real one):
find the user, View profile, Reset, OK; the user resets with the emailed code."""
import re
from urllib.parse import parse_qs, urlsplit

from support import PASSWORD, AuthActions, csrf_from, make_client, make_user
from sqlalchemy import select

from authserver.extensions import db
from authserver.mail.models import OutboxMessage

NEW_PASSWORD = "a fresh passphrase of mine"


def admin_browser(app):
    admin = AuthActions(app.test_client())
    make_user(app, "root", admin=True)
    assert admin.login("root").status_code == 303
    return admin.client


def the_reset_mail(app, to):
    with app.app_context():
        rows = list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.to == to)))
    assert len(rows) == 1
    return rows[0]


def click_view_profile(browser, q):
    html = browser.get("/admin/users", query_string={"q": q}).get_data(as_text=True)
    (href,) = re.findall(r'<a href="(/admin/users/\d+)">View profile</a>', html)
    return href, browser.get(href).get_data(as_text=True)


def click_reset_then_ok(browser, profile_url, profile_html):
    """Reset without script lands on the in-page confirmation; its OK button does it."""
    action = re.search(r'<form method="post" action="([^"]+/reset)"', profile_html).group(1)
    asked = browser.post(action, data={"csrf_token": csrf_from(profile_html), "confirm": ""})
    page = asked.get_data(as_text=True)
    assert ">OK</button>" in page
    done = browser.post(action, data={"csrf_token": csrf_from(page), "confirm": "yes"})
    assert done.status_code == 303 and done.headers["Location"] == profile_url
    return browser.get(profile_url).get_data(as_text=True)


def test_admin_resets_and_the_user_sets_a_new_password_with_the_emailed_code(app, client, auth):
    make_user(app, "alice", name="Alice Liddell")
    make_user(app, "bob", name="Bob Builder")
    client_id, secret = make_client(app)
    auth.login("alice")
    tokens = auth.code_flow(client_id, secret).get_json()
    browser = admin_browser(app)

    url, profile = click_view_profile(browser, "lidd")
    assert "alice@example.com" in profile
    after = click_reset_then_ok(browser, url, profile)
    assert "Password reset for alice" in after and "reset required" in after

    mail = the_reset_mail(app, "alice@example.com")
    code = re.search(r"^\s*(\d{6})\s*$", mail.text, re.M).group(1)
    link = re.search(r"(http://\S+/forgot-password/confirm\?\S+)", mail.text).group(1)
    assert parse_qs(urlsplit(link).query)["username"] == ["alice"]

    assert client.get("/account").status_code == 302  # her session ended
    refreshed = client.post("/token", data={"grant_type": "refresh_token",
                                            "refresh_token": tokens["refresh_token"]},
                            auth=(client_id, secret))
    assert refreshed.status_code == 400
    blocked = auth.login("alice")
    assert "reset" in blocked.get_data(as_text=True)
    assert client.get("/account").status_code == 302

    confirm_path = link.split("127.0.0.1:5000", 1)[1]
    token = csrf_from(client.get(confirm_path).get_data(as_text=True))
    resp = client.post("/forgot-password/confirm", data={
        "csrf_token": token, "username": "alice", "code": code, "password": NEW_PASSWORD,
        "password_confirm": NEW_PASSWORD})
    assert resp.status_code == 303 and resp.headers["Location"].startswith("/login")
    assert auth.login("alice", PASSWORD).status_code == 200  # the old password is gone
    assert auth.login("alice", NEW_PASSWORD).status_code == 303
    assert client.get("/account").status_code == 200
