"""SPEC story 4: "User password cannot be reset in the current state." and the way out."""
import re
from datetime import timedelta

import pytest
from support import AuthActions, csrf_from, make_client, make_user, query_of
from sqlalchemy import select

from authserver.extensions import db
from authserver.mail.models import OutboxMessage

APP = "http://127.0.0.1:9999/"
SENTENCE = "User password cannot be reset in the current state."
TEMP_RE = re.compile(r"^\s*(\S{5}-\S{5}-\S{5}-\S{5})\s*$", re.MULTILINE)
NEW_PASSWORD = "my own new passphrase"
GENERIC = "Incorrect user name or password."


def mails(app, to, kind=None):
    with app.app_context():
        stmt = select(OutboxMessage).where(OutboxMessage.to == to).order_by(OutboxMessage.id)
        if kind:
            stmt = stmt.where(OutboxMessage.kind == kind)
        return list(db.session.scalars(stmt))


def send_code(client, username):
    token = csrf_from(client.get("/forgot-password").get_data(as_text=True))
    return client.post("/forgot-password", data={"username": username, "csrf_token": token})


def admin_sends_temporary_password(app, user_id):
    """An administrator, in their own browser, presses Send temporary password and OK."""
    admin = AuthActions(app.test_client())
    make_user(app, "root", admin=True)
    assert admin.login("root").status_code == 303
    token = csrf_from(admin.client.get(f"/admin/users/{user_id}").get_data(as_text=True))
    resp = admin.client.post(f"/admin/users/{user_id}/temporary-password",
                             data={"csrf_token": token, "confirm": "yes"})
    assert resp.status_code == 303


def temporary_password_from_mail(app, to):
    (mail,) = mails(app, to, "temporary_password")
    return TEMP_RE.search(mail.text).group(1)


def follow(client, resp, limit=8):
    hops = []
    while resp.status_code in (302, 303):
        hops.append(resp.headers["Location"])
        assert len(hops) <= limit, f"redirect loop: {hops}"
        if hops[-1].startswith(APP):
            break
        resp = client.get(hops[-1])
    return resp, hops


def confirm_page(client, resp):
    assert resp.status_code == 303
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    return resp.headers["Location"], re.sub(r'value="[^"]*"', 'value=""', page)


@pytest.mark.parametrize("state", ["force_change_password", "disabled"])
def test_a_user_who_cannot_reset_sees_what_anyone_sees(app, client, state):
    make_user(app, "tess", state=state)
    make_user(app, "andy")
    answers = [confirm_page(client, send_code(client, name))
               for name in ("tess", "andy", "nobody")]
    locations = [loc for loc, _ in answers]
    assert locations == [f"/forgot-password/confirm?username={n}"
                         for n in ("tess", "andy", "nobody")]
    pages = {page.replace(name, "NAME") for (_, page), name in
             zip(answers, ("tess", "andy", "nobody"))}
    assert len(pages) == 1


@pytest.mark.parametrize("state", ["force_change_password", "disabled"])
def test_the_email_says_it_cannot_be_reset_and_whom_to_contact(app, client, state):
    make_user(app, "tess", state=state)
    send_code(client, "tess")
    (mail,) = mails(app, "tess@example.com")
    assert mail.kind == "cannot_reset"
    assert SENTENCE in mail.text.splitlines()
    assert "contact" in mail.text and "administrator" in mail.text
    assert not re.search(r"\b\d{6}\b", mail.text)


def test_admin_sends_a_temporary_password_and_the_user_gets_to_the_app(app, client, auth):
    uid = make_user(app, "tess", state="force_change_password")
    send_code(client, "tess")
    assert SENTENCE in mails(app, "tess@example.com", "cannot_reset")[0].text
    admin_sends_temporary_password(app, uid)
    password = temporary_password_from_mail(app, "tess@example.com")
    client_id, _ = make_client(app)
    resp, _, params = auth.authorize(client_id)
    client.get(resp.headers["Location"])
    login = auth.login("tess", password)
    assert login.status_code == 303 and login.headers["Location"] == "/change-password"
    token = csrf_from(client.get("/change-password").get_data(as_text=True))
    changed = client.post("/change-password", data={
        "csrf_token": token, "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    _, hops = follow(client, changed)
    assert hops[-1].startswith(APP + "callback?")
    assert query_of(hops[-1])["state"] == params["state"]
    assert auth.login("tess", password).status_code == 200  # the temporary one is spent


def test_after_seven_days_the_temporary_password_no_longer_works(app, client, auth, frozen):
    uid = make_user(app, "tess", state="force_change_password")
    admin_sends_temporary_password(app, uid)
    password = temporary_password_from_mail(app, "tess@example.com")
    frozen.tick(timedelta(days=7, seconds=1))
    resp = auth.login("tess", password)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and GENERIC in html
    assert "ask your administrator for a new one" in html
    assert client.get("/change-password").headers["Location"] == "/login"


def test_the_temporary_password_still_works_just_before_seven_days(app, client, auth, frozen):
    uid = make_user(app, "tess", state="force_change_password")
    admin_sends_temporary_password(app, uid)
    password = temporary_password_from_mail(app, "tess@example.com")
    frozen.tick(timedelta(days=7, seconds=-60))
    resp = auth.login("tess", password)
    assert resp.status_code == 303 and resp.headers["Location"] == "/change-password"
