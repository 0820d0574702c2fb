"""SPEC story 6: what each kind of account sees at /login, and that no scenario loops."""
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pyotp
from support import csrf_from, give_totp, make_client, make_user, query_of

from authserver.accounts import services as accounts
from authserver.accounts.models import User
from authserver.admin import services as admin
from authserver.extensions import db

APP = "http://127.0.0.1:9999/"
ISSUER = "http://127.0.0.1:5000"
NEW_PASSWORD = "my own new passphrase"
MAX_HOPS = 8
GENERIC = "Incorrect user name or password."


def follow(client, resp):
    """Follow redirects on this issuer like a browser, at most MAX_HOPS; stop at the app."""
    hops = []
    while resp.status_code in (301, 302, 303, 307, 308):
        location = resp.headers["Location"]
        hops.append(location)
        assert len(hops) <= MAX_HOPS, f"redirect loop: {hops}"
        if location.startswith(APP):
            break
        path = location[len(ISSUER):] if location.startswith(ISSUER) else location
        resp = client.get(path)
    return resp, hops


def post_form(client, path, **fields):
    token = csrf_from(client.get(path).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **fields})


def normalised(resp, *names):
    body = re.sub(r'value="[^"]*"', 'value=""', resp.get_data(as_text=True))
    for name in names:
        body = body.replace(name, "NAME")
    return body


def signed_in(client):
    return client.get("/account").status_code == 200


def temporary_password(app, user_id):
    with app.app_context():
        password = accounts.set_temporary(db.session.get(User, user_id))
        db.session.commit()
        return password


def start_at_app(auth, client_id):
    """The app sends the browser to /authorize; returns the login page it lands on."""
    resp, _, params = auth.authorize(client_id)
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login?next=")
    return client_login_page(auth.client, resp.headers["Location"]), params


def client_login_page(client, location):
    page = client.get(location)
    assert page.status_code == 200
    return page


# --- unknown user and wrong password -----------------------------------------------------------

def test_unknown_user_and_wrong_password_get_the_same_generic_answer(app, client, auth):
    make_user(app, "alice")
    unknown = auth.login("nobody-here", "whatever password")
    wrong = auth.login("alice", "not the password")
    assert unknown.status_code == wrong.status_code == 200
    assert GENERIC in unknown.get_data(as_text=True)
    assert normalised(unknown, "nobody-here") == normalised(wrong, "alice")
    assert not signed_in(client)


# --- disabled ----------------------------------------------------------------------------------

def test_disabled_account_with_the_right_password_is_told_it_is_inactive(app, client, auth):
    make_user(app, "dan", state="disabled")
    resp = auth.login("dan")
    assert resp.status_code == 200
    assert "inactive" in resp.get_data(as_text=True)
    assert not signed_in(client)


def test_the_right_password_on_an_account_state_page_is_never_counted_as_a_failure(
        app, client, auth):
    """Each try claims a failure before hashing and clears it once the password proves right.
    The inactive and reset pages end the sign-in without opening a session: the cleared count
    must still be committed there, or the owner pressing *Sign in* a few times would lock
    their own name (five failures) and see "too many attempts" instead of their page."""
    make_user(app, "dan", state="disabled")
    make_user(app, "rita", state="reset_required")
    for _ in range(app.config["LOGIN_MAX_FAILURES"] + 2):
        assert "inactive" in auth.login("dan").get_data(as_text=True)
        assert "/forgot-password/confirm" in auth.login("rita").get_data(as_text=True)


def test_disabled_account_with_a_wrong_password_gets_the_generic_message(app, client, auth):
    make_user(app, "dan", state="disabled")
    resp = auth.login("dan", "wrong password")
    assert GENERIC in resp.get_data(as_text=True)
    assert "inactive" not in resp.get_data(as_text=True)


def test_disabled_account_coming_from_an_app_stops_on_the_page(app, client, auth):
    make_user(app, "dan", state="disabled")
    client_id, _ = make_client(app)
    start_at_app(auth, client_id)
    resp, hops = follow(client, auth.login("dan"))
    assert hops == [] and "inactive" in resp.get_data(as_text=True)


# --- reset required ----------------------------------------------------------------------------

def test_reset_required_sees_reset_and_the_confirm_link(app, client, auth):
    make_user(app, "rita", state="reset_required")
    resp = auth.login("rita")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "reset" in html.lower()
    assert 'href="/forgot-password/confirm?username=rita"' in html
    assert not signed_in(client)


# --- temporary password ------------------------------------------------------------------------

def test_temporary_password_forces_a_change_then_goes_on_to_the_app(app, client, auth):
    uid = make_user(app, "tom")
    password = temporary_password(app, uid)
    client_id, _ = make_client(app)
    _, params = start_at_app(auth, client_id)
    resp = auth.login("tom", password)
    assert resp.status_code == 303 and resp.headers["Location"] == "/change-password"
    page = client.get("/change-password").get_data(as_text=True)
    assert 'name="password"' in page and 'name="password_confirm"' in page
    changed = post_form(client, "/change-password", password=NEW_PASSWORD,
                        password_confirm=NEW_PASSWORD)
    resp, hops = follow(client, changed)
    assert hops[-1].startswith(APP + "callback?")
    assert query_of(hops[-1])["state"] == params["state"] and "code" in query_of(hops[-1])
    assert auth.login("tom", NEW_PASSWORD).status_code == 303


def test_temporary_password_without_a_pending_app_lands_on_the_account(app, client, auth):
    uid = make_user(app, "tom")
    password = temporary_password(app, uid)
    assert auth.login("tom", password).headers["Location"] == "/change-password"
    resp, hops = follow(client, post_form(client, "/change-password", password=NEW_PASSWORD,
                                          password_confirm=NEW_PASSWORD))
    assert [urlsplit(h).path for h in hops] == ["/account"]
    assert resp.status_code == 200


def test_change_password_page_cannot_be_skipped(app, client, auth):
    uid = make_user(app, "tom")
    auth.login("tom", temporary_password(app, uid))
    assert not signed_in(client)
    client_id, _ = make_client(app)
    resp, _, _ = auth.authorize(client_id)
    assert resp.headers["Location"].startswith("/login?next=")


def test_expired_temporary_password_says_ask_your_administrator(app, client, auth, frozen):
    uid = make_user(app, "tom")
    password = temporary_password(app, uid)
    frozen.tick(timedelta(days=7, seconds=1))
    resp = auth.login("tom", password)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and GENERIC in html
    assert "ask your administrator for a new one" in html
    wrong = auth.login("tom", "not the temporary one")
    assert "administrator" not in wrong.get_data(as_text=True)


# --- MFA ---------------------------------------------------------------------------------------

def test_mfa_asks_for_a_one_time_code_after_the_password(app, client, auth):
    uid = make_user(app, "mia")
    secret = give_totp(app, uid)
    client_id, _ = make_client(app)
    _, params = start_at_app(auth, client_id)
    resp = auth.login("mia")
    assert resp.status_code == 303 and resp.headers["Location"] == "/login/mfa"
    assert 'name="code"' in client.get("/login/mfa").get_data(as_text=True)
    assert not signed_in(client)
    wrong = post_form(client, "/login/mfa", code="000000" if pyotp.TOTP(secret).now()
                      != "000000" else "111111")
    assert wrong.status_code == 200 and "not right" in wrong.get_data(as_text=True)
    resp, hops = follow(client, post_form(client, "/login/mfa", code=pyotp.TOTP(secret).now()))
    assert hops[-1].startswith(APP + "callback?")
    assert query_of(hops[-1])["state"] == params["state"]


# --- licence -----------------------------------------------------------------------------------

def test_user_without_a_licence_sees_a_page_not_the_app_and_not_a_loop(app, client, auth):
    make_user(app, "lou")
    client_id, _ = make_client(app, "Payroll", requires_licence=True)
    start_at_app(auth, client_id)
    resp, hops = follow(client, auth.login("lou"))
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "licence" in html and "Payroll" in html
    assert not any(h.startswith(APP) for h in hops) and len(hops) == 1
    for _ in range(3):  # coming back from the app again ends on the same page
        again, _, _ = auth.authorize(client_id)
        assert again.status_code == 200 and "licence" in again.get_data(as_text=True)


def test_licensed_user_goes_on_to_the_app(app, client, auth):
    uid = make_user(app, "lou")
    client_id, _ = make_client(app, "Payroll", requires_licence=True)
    with app.app_context():
        admin.set_licence(db.session.get(User, uid), client_id, True, None)
    start_at_app(auth, client_id)
    _, hops = follow(client, auth.login("lou"))
    assert hops[-1].startswith(APP + "callback?")
