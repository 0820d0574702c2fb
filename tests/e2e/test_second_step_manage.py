"""Issue 10, finding 4 and the policy/admin items: enrolment kept on the server with a local
QR code, changes to the second step need the password unless the sign-in is recent and
email a notice, AUTHSERVER_MFA_REQUIRED, and *Reset two-step sign-in* (web, API, CLI)."""
import re
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select
from support import PASSWORD, AuthActions, csrf_from, give_totp, make_client, make_user
from test_admin_api import service_token
from test_admin_api_auth import user_token

from authserver.accounts.models import RecoveryCode, User
from authserver.audit import SecurityEvent
from authserver.extensions import db
from authserver.mail.models import OutboxMessage

SECRET_RE = re.compile(r'id="totp-secret">([A-Z2-7]+)<')


def post_form(client, path, **fields):
    token = csrf_from(client.get(path).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **fields})


def login(client, username, password=PASSWORD):
    return post_form(client, "/login", username=username, password=password)


def mails(app, kind):
    with app.app_context():
        return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)))


def get_user(app, uid) -> User:
    with app.app_context():
        return db.session.get(User, uid)


def enrol(client, path="/account/mfa", **extra):
    page = client.get(path).get_data(as_text=True)
    secret = SECRET_RE.search(page).group(1)
    resp = client.post(path, data={"csrf_token": csrf_from(page),
                                   "code": pyotp.TOTP(secret).now(), **extra})
    return secret, page, resp


def test_enrolment_shows_a_local_qr_code_the_secret_and_the_link(app, client):
    make_user(app, "amy")
    login(client, "amy")
    page = client.get("/account/mfa").get_data(as_text=True)
    assert "<svg" in page and "http" not in page.split("<svg", 1)[1].split("</svg>")[0] \
        .replace("http://www.w3.org/2000/svg", "")
    secret = SECRET_RE.search(page).group(1)
    assert "otpauth://totp/" in page and f"secret={secret}" in page
    assert secret not in client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value
    assert page == client.get("/account/mfa").get_data(as_text=True).replace(
        csrf_from(client.get("/account/mfa").get_data(as_text=True)), csrf_from(page))


def test_turning_it_on_gives_ten_recovery_codes_once_and_a_notice(app, client):
    uid = make_user(app, "amy")
    login(client, "amy")
    secret, _, resp = enrol(client)
    codes = re.findall(r"<code>([A-Z2-7]{4}(?:-[A-Z2-7]{4}){3})</code>",
                       resp.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    user = get_user(app, uid)
    assert user.mfa_enabled and secret not in user.totp_secret
    assert user.totp_secret.startswith("v1.")
    [notice] = mails(app, "mfa_changed")
    assert "turned on" in notice.text


def test_a_secret_supplied_by_the_browser_is_ignored(app, client):
    uid = make_user(app, "amy")
    login(client, "amy")
    page = client.get("/account/mfa").get_data(as_text=True)
    mine = pyotp.random_base32()
    resp = client.post("/account/mfa", data={"csrf_token": csrf_from(page), "secret": mine,
                                             "code": pyotp.TOTP(mine).now()})
    assert resp.status_code == 200 and not get_user(app, uid).mfa_enabled


def test_changes_need_the_password_after_five_minutes(app, client, frozen):
    uid = make_user(app, "amy")
    login(client, "amy")
    give_totp(app, uid)
    frozen.tick(timedelta(minutes=6))
    page = client.get("/account/mfa").get_data(as_text=True)
    assert 'name="password"' in page
    resp = client.post("/account/mfa/disable", data={"csrf_token": csrf_from(page)})
    assert resp.status_code == 400 and get_user(app, uid).mfa_enabled
    resp = client.post("/account/mfa/disable", data={"csrf_token": csrf_from(page),
                                                     "password": "wrong password!"})
    assert resp.status_code == 400 and get_user(app, uid).mfa_enabled
    before = get_user(app, uid).totp_secret
    _, _, resp = enrol(client, "/account/mfa?replace=1")
    assert "Current password" in resp.get_data(as_text=True)
    assert get_user(app, uid).totp_secret == before
    frozen.tick(30)
    _, _, resp = enrol(client, "/account/mfa?replace=1", password=PASSWORD)
    assert "Your recovery codes" in resp.get_data(as_text=True)
    assert get_user(app, uid).totp_secret != before
    assert [m for m in mails(app, "mfa_changed") if "replaced the old one" in m.text]
    resp = client.post("/account/mfa/disable", data={"csrf_token": csrf_from(page),
                                                     "password": PASSWORD})
    assert resp.status_code == 303 and not get_user(app, uid).mfa_enabled
    assert [m.text for m in mails(app, "mfa_changed") if "turned off" in m.text]


def test_a_recent_sign_in_needs_no_password_and_new_codes_replace_the_old(app, client):
    make_user(app, "amy")
    login(client, "amy")
    enrol(client)
    page = client.get("/account/mfa").get_data(as_text=True)
    assert 'name="password"' not in page
    with app.app_context():
        before = set(db.session.scalars(select(RecoveryCode.code_hash)))
    resp = client.post("/account/mfa/recovery-codes", data={"csrf_token": csrf_from(page)})
    assert resp.status_code == 200
    with app.app_context():
        after = set(db.session.scalars(select(RecoveryCode.code_hash)))
    assert len(after) == 10 and not before & after
    assert len(mails(app, "mfa_changed")) == 2


@pytest.mark.parametrize("data", [
    {}, {"code": ""}, {"code": "x" * 5000}, {"code": ["1", "2"]}, {"code": "\x00" * 6},
    {"code": "123456", "password": "p" * 5000}])
def test_bad_input_to_the_new_forms_is_never_a_500(app, client, data):
    uid = make_user(app, "amy")
    give_totp(app, uid)
    login(client, "amy")
    for path in ("/login/mfa", "/login/mfa/enrol", "/account/mfa", "/account/mfa/disable",
                 "/account/mfa/recovery-codes"):
        token = csrf_from(client.get("/login").get_data(as_text=True))
        for csrf in ({}, {"csrf_token": token}, {"csrf_token": "garbage"}):
            resp = client.post(path, data={**data, **csrf})
            assert resp.status_code < 500, (path, data, csrf)
    other = app.test_client()
    login(other, "amy")
    for csrf in ({}, {"csrf_token": "garbage"}):
        assert other.post("/login/mfa", data={**data, **csrf}).status_code < 500
    app.config["MFA_REQUIRED"] = "all"
    bob = app.test_client()
    make_user(app, "bob")
    assert login(bob, "bob").headers["Location"] == "/login/mfa/enrol"
    token = csrf_from(bob.get("/login/mfa/enrol").get_data(as_text=True))
    for csrf in ({}, {"csrf_token": token}, {"csrf_token": "garbage"}):
        resp = bob.post("/login/mfa/enrol", data={**data, **csrf})
        assert resp.status_code < 500 and resp.status_code != 303, (data, csrf)


def test_admin_reset_mfa_without_csrf_does_nothing(app, client):
    make_user(app, "root", admin=True)
    uid = make_user(app, "mia")
    give_totp(app, uid)
    login(client, "root")
    for data in ({}, {"confirm": "yes"}, {"confirm": "yes", "csrf_token": "x" * 5000}):
        assert client.post(f"/admin/users/{uid}/reset-mfa", data=data).status_code == 400
    assert get_user(app, uid).mfa_enabled


# --- MFA policy -------------------------------------------------------------------------------

def test_policy_admins_takes_an_admin_to_enrolment_then_in(app, client, settings):
    app.config["MFA_REQUIRED"] = "admins"
    uid = make_user(app, "root", admin=True)
    assert login(client, "root").headers["Location"] == "/login/mfa/enrol"
    assert client.get("/account").status_code == 302  # not signed in yet
    _, _, resp = enrol(client, "/login/mfa/enrol")
    assert "Your recovery codes" in resp.get_data(as_text=True)
    assert client.get("/admin/users").status_code == 200
    assert get_user(app, uid).mfa_enabled


def test_policy_refuses_the_users_module_and_api_without_a_second_step(app, client):
    uid = make_user(app, "root", admin=True)
    login(client, "root")  # signed in under policy none
    app.config["MFA_REQUIRED"] = "admins"
    assert client.get("/admin/users").headers["Location"] == "/account/mfa"
    give_totp(app, uid)
    assert client.get("/admin/users").status_code in (302, 403)


def test_policy_none_and_all(app, client):
    make_user(app, "bob")
    assert login(client, "bob").headers["Location"] == "/account"
    app.config["MFA_REQUIRED"] = "all"
    other = app.test_client()
    assert login(other, "bob").headers["Location"] == "/login/mfa/enrol"


# --- Reset two-step sign-in ---------------------------------------------------------------------

def test_admin_resets_two_step_sign_in_from_the_users_module(app, client):
    make_user(app, "root", admin=True)
    uid = make_user(app, "mia")
    secret = give_totp(app, uid)
    mia = app.test_client()
    login(mia, "mia")
    post_form(mia, "/login/mfa", code=pyotp.TOTP(secret).now())
    assert mia.get("/account").status_code == 200
    login(client, "root")
    page = client.get(f"/admin/users/{uid}").get_data(as_text=True)
    assert "Reset two-step sign-in" in page
    resp = client.post(f"/admin/users/{uid}/reset-mfa",
                       data={"csrf_token": csrf_from(page), "confirm": "yes"})
    assert resp.status_code == 303
    assert not get_user(app, uid).mfa_enabled and mia.get("/account").status_code == 302
    assert [m for m in mails(app, "mfa_changed") if "administrator" in m.text]
    with app.app_context():
        assert db.session.scalar(select(SecurityEvent).where(
            SecurityEvent.name == "mfa_admin_reset")).actor_id is not None


def test_admin_api_resets_two_step_sign_in(app, client):
    token, _ = service_token(app, client)
    uid = make_user(app, "mia")
    give_totp(app, uid)
    resp = client.post(f"/api/admin/users/{uid}/reset-mfa",
                       headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200 and resp.get_json()["mfa_enabled"] is False
    assert client.post("/api/admin/users/999999/reset-mfa",
                       headers={"Authorization": f"Bearer {token}"}).status_code == 404


def test_cli_reset_mfa_and_licence(app):
    uid = make_user(app, "mia")
    give_totp(app, uid)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "reset-mfa", "mia"])
    assert result.exit_code == 0, result.output
    assert not get_user(app, uid).mfa_enabled
    client_id, _ = make_client(app, requires_licence=True)
    result = runner.invoke(args=["users", "licence", "mia", client_id])
    assert result.exit_code == 0 and "Gave a licence" in result.output
    with app.app_context():
        assert len(db.session.get(User, uid).licences) == 1
    result = runner.invoke(args=["users", "licence", "mia", client_id, "--remove"])
    assert result.exit_code == 0 and "Removed" in result.output
    assert runner.invoke(args=["users", "licence", "mia", "nope"]).exit_code == 1


def test_policy_refuses_an_admin_api_token_of_an_admin_without_a_second_step(app, client):
    make_user(app, "root", admin=True)
    token = user_token(app, AuthActions(client), "root")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/admin/users", headers=headers).status_code == 200
    app.config["MFA_REQUIRED"] = "admins"
    resp = client.get("/api/admin/users", headers=headers)
    assert resp.status_code == 403 and "two-step" in resp.get_json()["detail"]
