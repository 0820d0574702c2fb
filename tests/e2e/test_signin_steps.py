"""Issue 10, findings 1-4, 8 and 12: the sign-in is a server-side record, each step is used
once, the account is re-read at every step, and the second step resists guessing and replay.
Every test drives the hosted pages as a browser would; a copied cookie is a second browser."""
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import select
from support import PASSWORD, TEST_SECRET, csrf_from, give_totp, make_user

from authserver.accounts.factors import recovery
from authserver.accounts.models import RecoveryCode, User
from authserver.admin import services as admin
from authserver.extensions import db
from authserver.mail.models import OutboxMessage

NEW_PASSWORD = "my own new passphrase"


def post_form(client, path, **fields):
    token = csrf_from(client.get(path).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **fields})


def login(client, username, password=PASSWORD):
    return post_form(client, "/login", username=username, password=password)


def second_browser(app, client):
    """Another browser holding an exact copy of this one's cookie."""
    name = app.config["SESSION_COOKIE_NAME"]
    other = app.test_client()
    other.set_cookie(name, client.get_cookie(name).value)
    return other


def signed_in(client) -> bool:
    return client.get("/account").status_code == 200


def mails(app, kind):
    with app.app_context():
        return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)))


def wrong_code(secret):
    right = pyotp.TOTP(secret).now()
    return "000000" if right != "000000" else "111111"


@pytest.fixture
def mia(app):
    uid = make_user(app, "mia")
    return uid, give_totp(app, uid)


# --- finding 3: the waiting step is a server-side record, used once --------------------------

def test_a_copied_cookie_cannot_replay_a_finished_second_step(app, client, mia, frozen):
    _, secret = mia
    assert login(client, "mia").headers["Location"] == "/login/mfa"
    copy = second_browser(app, client)
    token = csrf_from(copy.get("/login/mfa").get_data(as_text=True))
    post_form(client, "/login/mfa", code=pyotp.TOTP(secret).now())
    assert signed_in(client)
    frozen.tick(31)
    resp = copy.post("/login/mfa", data={"csrf_token": token, "code": pyotp.TOTP(secret).now()})
    assert resp.status_code == 303 and resp.headers["Location"] == "/login"
    assert not signed_in(copy)


@pytest.mark.usefixtures("mia")
def test_logout_ends_the_waiting_step_for_every_copy(app, client):
    login(client, "mia")
    copy = second_browser(app, client)
    post_form(client, "/logout")
    assert copy.get("/login/mfa").headers["Location"] == "/login"


def test_sign_out_everywhere_ends_sign_ins_in_progress(app, client, mia):
    _, secret = mia
    login(client, "mia")
    other = app.test_client()
    login(other, "mia")
    post_form(other, "/login/mfa", code=pyotp.TOTP(secret).now())
    token = csrf_from(other.get("/account").get_data(as_text=True))
    other.post("/account/sessions/revoke", data={"csrf_token": token})
    assert client.get("/login/mfa").headers["Location"] == "/login"


def test_an_admin_reset_between_password_and_code_ends_the_sign_in(app, client, mia):
    uid, secret = mia
    login(client, "mia")
    token = csrf_from(client.get("/login/mfa").get_data(as_text=True))
    with app.app_context():
        admin.reset_user(db.session.get(User, uid), None)
    resp = client.post("/login/mfa", data={"csrf_token": token,
                                           "code": pyotp.TOTP(secret).now()})
    assert "reset" in resp.get_data(as_text=True).lower()
    assert not signed_in(client)


def test_a_disabled_account_cannot_enable_itself_through_change_password(app, client):
    uid = make_user(app, "tom", state="force_change_password")
    assert login(client, "tom").headers["Location"] == "/change-password"
    form = client.get("/change-password").get_data(as_text=True)
    with app.app_context():
        admin.disable_user(db.session.get(User, uid), None)
    resp = client.post("/change-password", data={"csrf_token": csrf_from(form),
                                                 "password": NEW_PASSWORD,
                                                 "password_confirm": NEW_PASSWORD})
    assert "inactive" in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(User, uid).state == "disabled"


def test_a_cookie_from_before_the_forced_change_cannot_set_the_password_again(app, client):
    uid = make_user(app, "tom", state="force_change_password")
    login(client, "tom")
    copy = second_browser(app, client)
    form = copy.get("/change-password").get_data(as_text=True)
    post_form(client, "/change-password", password=NEW_PASSWORD, password_confirm=NEW_PASSWORD)
    assert signed_in(client)
    with app.app_context():
        version = db.session.get(User, uid).password_version
    resp = copy.post("/change-password", data={"csrf_token": csrf_from(form),
                                               "password": "attacker chosen pass",
                                               "password_confirm": "attacker chosen pass"})
    assert resp.status_code == 303 and resp.headers["Location"] == "/login"
    with app.app_context():
        assert db.session.get(User, uid).password_version == version


def test_change_password_serves_only_a_forced_change(app, client):
    make_user(app, "ann")
    login(client, "ann")
    assert client.get("/change-password").headers["Location"] == "/login"


def test_a_forged_cookie_claim_is_not_a_waiting_step(app, client, mia):
    """Old cookies carried {"pending": {"user_id", "step", "at"}} signed with the secret key."""
    uid, _ = mia
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    forged = serializer.dumps({"pending": {"user_id": uid, "step": "mfa", "amr": ["pwd"],
                                           "at": 4102444800}, "signin": "guess"})
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], forged)
    assert client.get("/login/mfa").headers["Location"] == "/login"
    assert app.config["SECRET_KEY"] == TEST_SECRET


@pytest.mark.usefixtures("mia")
def test_the_sign_in_lives_fifteen_minutes(app, client, frozen):
    login(client, "mia")
    frozen.tick(timedelta(minutes=15, seconds=1))
    assert client.get("/login/mfa").headers["Location"] == "/login"


# --- findings 1 and 2: guessing and replay of one-time codes ----------------------------------

def test_five_wrong_codes_end_the_sign_in_lock_the_step_and_email_the_user(app, client, mia,
                                                                           frozen):
    _, secret = mia
    login(client, "mia")
    for _ in range(4):
        resp = post_form(client, "/login/mfa", code=wrong_code(secret))
        assert resp.status_code == 200 and "not right" in resp.get_data(as_text=True)
    resp = post_form(client, "/login/mfa", code=wrong_code(secret))
    assert resp.headers["Location"] == "/login"
    assert client.get("/login/mfa").headers["Location"] == "/login"
    [notice] = mails(app, "mfa_failed")
    assert "knew your password but not your code" in notice.subject
    login(client, "mia")  # the password alone still gets to the step, the step is locked
    resp = post_form(client, "/login/mfa", code=pyotp.TOTP(secret).now())
    assert "Too many wrong codes" in resp.get_data(as_text=True) and not signed_in(client)
    frozen.tick(31)
    resp = post_form(client, "/login/mfa", code=wrong_code(secret))  # 6th in a row
    assert resp.headers["Location"] == "/login" and len(mails(app, "mfa_failed")) == 2
    frozen.tick(31)  # the delay doubled: still locked after 31 s
    login(client, "mia")
    resp = post_form(client, "/login/mfa", code=pyotp.TOTP(secret).now())
    assert "Too many wrong codes" in resp.get_data(as_text=True) and not signed_in(client)
    frozen.tick(30)
    post_form(client, "/login/mfa", code=pyotp.TOTP(secret).now())
    assert signed_in(client)


def test_a_one_time_code_works_once_even_in_another_browser(app, client, mia, frozen):
    _, secret = mia
    code = pyotp.TOTP(secret).now()
    login(client, "mia")
    post_form(client, "/login/mfa", code=code)
    assert signed_in(client)
    other = app.test_client()
    login(other, "mia")
    resp = post_form(other, "/login/mfa", code=code)
    assert "not right" in resp.get_data(as_text=True) and not signed_in(other)
    earlier = pyotp.TOTP(secret).at(datetime.now(UTC) - timedelta(seconds=30))
    resp = post_form(other, "/login/mfa", code=earlier)  # nor a code of an earlier step
    assert "not right" in resp.get_data(as_text=True) and not signed_in(other)
    frozen.tick(30)
    post_form(other, "/login/mfa", code=pyotp.TOTP(secret).now())
    assert signed_in(other)


def test_a_recovery_code_works_once(app, client, mia):
    uid, _ = mia
    with app.app_context():
        codes = recovery.new_codes(db.session.get(User, uid))
        db.session.commit()
    assert len(codes) == 10 and all(len(c.replace("-", "")) == 16 for c in codes)
    login(client, "mia")
    post_form(client, "/login/mfa", code=codes[0].lower())
    assert signed_in(client)
    other = app.test_client()
    login(other, "mia")
    assert "not right" in post_form(other, "/login/mfa", code=codes[0]).get_data(as_text=True)
    with app.app_context():
        rows = list(db.session.scalars(select(RecoveryCode.code_hash)))
        assert len(rows) == 9 and not any(c.replace("-", "") in h for h in rows for c in codes)


def test_the_code_step_offers_a_way_back_to_another_account(app, client, mia):
    """/login/mfa is not a dead end: "Not you?" starts again at /login with nothing pending."""
    login(client, "mia")
    page = client.get("/login/mfa").get_data(as_text=True)
    assert 'action="/login/restart"' in page and "Sign in with another account" in page
    resp = client.post("/login/restart", data={"csrf_token": csrf_from(page)})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/login")
    assert client.get("/login/mfa").status_code in (302, 303)  # the waiting step is gone
    make_user(app, "noah")
    assert login(client, "noah").status_code == 303 and signed_in(client)
