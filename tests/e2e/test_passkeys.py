"""Issue 13: passkeys over HTTP, with a software authenticator (tests/e2e/soft_authenticator.py)
answering the server's options the way a browser does. The browser tests with Chromium's
virtual authenticator are in tests/browser/test_passkeys.py."""
import json
import logging

import pytest
from soft_authenticator import SoftAuthenticator
from sqlalchemy import select
from support import PASSWORD, csrf_from, give_totp, make_user

from authserver import create_app
from authserver.accounts.factors import passkey
from authserver.accounts.models import Passkey, User
from authserver.audit import SecurityEvent
from authserver.extensions import db
from authserver.mail.models import OutboxMessage


@pytest.fixture
def settings(settings):
    settings["ISSUER"] = "http://localhost"  # browsers refuse WebAuthn on an IP address
    return settings


def post_form(client, path, page=None, **fields):
    token = csrf_from(client.get(page or path).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **fields})


def login(client, username="alice", password=PASSWORD):
    return post_form(client, "/login", username=username, password=password)


def options(client, path, page, body=None):
    token = csrf_from(client.get(page).get_data(as_text=True))
    resp = client.post(path, json=body or {}, headers={"X-CSRFToken": token})
    return resp


def add_passkey(client, authn=None, *, name="Laptop", second_step=True, **claims):
    authn = authn or SoftAuthenticator()
    resp = options(client, "/account/passkeys/options", "/account/passkeys")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    opts = resp.get_json()
    resp = post_form(client, "/account/passkeys", "/account/passkeys",
                     credential=json.dumps(authn.create(opts, **claims)), name=name,
                     **({"second_step": "1"} if second_step else {}))
    return authn, resp


def passkey_login_options(client):
    resp = options(client, "/login/passkey/options", "/login")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def passkey_login(client, authn, opts=None, **claims):
    opts = opts or passkey_login_options(client)
    return post_form(client, "/login/passkey", "/login",
                     credential=json.dumps(authn.get(opts, **claims)))


def user_with_passkey(app, username="alice", **kwargs):
    uid = make_user(app, username)
    c = app.test_client()
    assert login(c, username).status_code == 303
    authn, resp = add_passkey(c, **kwargs)
    assert resp.status_code == 303, resp.get_data(as_text=True)
    return uid, authn


def signed_in_as(client) -> str | None:
    resp = client.get("/account")
    return None if resp.status_code != 200 else resp.get_data(as_text=True)


def passkeys_of(app, uid):
    with app.app_context():
        return list(db.session.scalars(select(Passkey).where(Passkey.user_id == uid)))


def events(app, name):
    with app.app_context():
        return list(db.session.scalars(select(SecurityEvent).where(SecurityEvent.name == name)))


# --- adding, signing in, removing ------------------------------------------------------------

def test_add_a_passkey_then_sign_in_with_it_without_a_password(app, client):
    uid, authn = user_with_passkey(app)
    [pk] = passkeys_of(app, uid)
    assert pk.name == "Laptop" and pk.second_step and pk.sign_count == 0
    assert pk.transports == ["internal"] and pk.last_used_at is None
    with app.app_context():
        [mail] = db.session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "passkey_changed")).all()
        assert "Laptop" in mail.text and "added" in mail.subject
    resp = passkey_login(client, authn)
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/account")
    assert "alice" in signed_in_as(client)
    [pk] = passkeys_of(app, uid)
    assert pk.last_used_at is not None and pk.sign_count == 0  # a synced passkey: stays 0
    assert passkey_login(app.test_client(), authn).status_code == 303  # 0 again: accepted
    page = client.get("/account/passkeys").get_data(as_text=True)
    assert "Laptop" in page and "last used" in page


def test_a_passkey_sign_in_is_complete_and_carries_rfc8176_amr(app, client):
    from authserver.accounts.models import BrowserSession
    uid, authn = user_with_passkey(app)
    give_totp(app, uid)  # the passkey with user verification satisfies the second step
    assert passkey_login(client, authn).headers["Location"].endswith("/account")
    with app.app_context():
        bs = db.session.scalars(select(BrowserSession).order_by(BrowserSession.id.desc())).first()
        assert bs.amr == ["hwk", "user", "mfa"]


def test_the_name_defaults_to_the_browser(app, client):
    make_user(app)
    login(client)
    resp = options(client, "/account/passkeys/options", "/account/passkeys")
    authn = SoftAuthenticator()
    client.environ_base["HTTP_USER_AGENT"] = (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/140.0 Safari/537.36")
    post_form(client, "/account/passkeys", "/account/passkeys",
              credential=json.dumps(authn.create(resp.get_json())), name="  ")
    with app.app_context():
        assert db.session.scalar(select(Passkey.name)) == "Chrome on Linux"


def test_a_removed_passkey_no_longer_signs_in(app, client):
    uid, authn = user_with_passkey(app)
    assert passkey_login(client, authn).status_code == 303
    [pk] = passkeys_of(app, uid)
    resp = post_form(client, f"/account/passkeys/{pk.id}/remove", "/account/passkeys")
    assert resp.status_code == 303 and passkeys_of(app, uid) == []
    with app.app_context():
        assert db.session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "passkey_changed",
            OutboxMessage.subject.contains("removed"))).first() is not None
    resp = passkey_login(app.test_client(), authn)
    assert resp.status_code == 400 and "not registered" in resp.get_data(as_text=True)


def test_adding_and_removing_need_the_password_after_five_minutes(app, client, frozen):
    uid = make_user(app)
    login(client)
    frozen.tick(301)
    resp = options(client, "/account/passkeys/options", "/account/passkeys")
    assert resp.status_code == 403 and "password" in resp.get_json()["error"]
    assert 'id="passkey-password"' in client.get("/account/passkeys").get_data(as_text=True)
    resp = options(client, "/account/passkeys/options", "/account/passkeys",
                   {"password": "wrong password"})
    assert resp.status_code == 403
    resp = options(client, "/account/passkeys/options", "/account/passkeys",
                   {"password": PASSWORD})
    assert resp.status_code == 200 and resp.get_json()["rp"]["id"] == "localhost"
    opts = resp.get_json()
    assert opts["authenticatorSelection"]["residentKey"] == "required"
    assert opts["authenticatorSelection"]["userVerification"] == "required"
    assert opts["attestation"] == "none"
    post_form(client, "/account/passkeys", "/account/passkeys",
              credential=json.dumps(SoftAuthenticator().create(opts)), name="Phone")
    [pk] = passkeys_of(app, uid)
    resp = post_form(client, f"/account/passkeys/{pk.id}/remove", "/account/passkeys")
    assert resp.status_code == 400 and len(passkeys_of(app, uid)) == 1
    resp = post_form(client, f"/account/passkeys/{pk.id}/remove", "/account/passkeys",
                     password=PASSWORD)
    assert resp.status_code == 303 and passkeys_of(app, uid) == []


def test_the_right_current_password_asked_again_and_again_never_locks_the_name(
        app, client, frozen):
    """Removing a passkey that is already gone, with the right password, stores nothing;
    the check's cleared failure count is committed anyway, or the owner would lock their own
    name after five tries and be told to wait."""
    make_user(app)
    login(client)
    frozen.tick(301)
    for _ in range(app.config["LOGIN_MAX_FAILURES"] + 2):
        resp = post_form(client, "/account/passkeys/12345/remove", "/account/passkeys",
                         password=PASSWORD)
        assert resp.status_code == 404, resp.get_data(as_text=True)
    assert login(client).status_code == 303


def test_someone_elses_passkey_cannot_be_removed(app, client):
    uid, _ = user_with_passkey(app, "bob")
    make_user(app, "alice")
    login(client)
    [pk] = passkeys_of(app, uid)
    resp = post_form(client, f"/account/passkeys/{pk.id}/remove", "/account/passkeys")
    assert resp.status_code == 404 and len(passkeys_of(app, uid)) == 1


# --- negative: challenges, origins, RP IDs, states ---------------------------------------------

def test_a_challenge_is_used_once(app, client):
    _, authn = user_with_passkey(app)
    opts = passkey_login_options(client)
    answer = json.dumps(authn.get(opts))
    assert post_form(client, "/login/passkey", "/login", credential=answer).status_code == 303
    other = app.test_client()
    passkey_login_options(other)  # its own handle: the replay is still refused
    resp = post_form(other, "/login/passkey", "/login", credential=answer)
    assert resp.status_code == 400 and "already used" in resp.get_data(as_text=True)
    assert signed_in_as(other) is None


def test_a_challenge_from_another_browser_is_refused(app):
    _, authn = user_with_passkey(app)
    victim, attacker = app.test_client(), app.test_client()
    opts = passkey_login_options(victim)
    passkey_login_options(attacker)
    resp = post_form(attacker, "/login/passkey", "/login",
                     credential=json.dumps(authn.get(opts)))
    assert resp.status_code == 400 and signed_in_as(attacker) is None


def test_a_challenge_from_another_sign_in_is_refused_at_the_second_step(app):
    uid, authn = user_with_passkey(app)
    one, two = app.test_client(), app.test_client()
    assert login(one).headers["Location"].endswith("/login/mfa")
    assert login(two).headers["Location"].endswith("/login/mfa")
    opts = options(one, "/login/mfa/passkey/options", "/login/mfa").get_json()
    resp = post_form(two, "/login/mfa/passkey", "/login/mfa",
                     credential=json.dumps(authn.get(opts)))
    assert resp.status_code == 400 and signed_in_as(two) is None


@pytest.mark.parametrize("claims", [{"origin": "http://evil.example"},
                                    {"origin": "http://localhost:8443"},
                                    {"rp_id": "evil.example"}])
def test_an_answer_for_another_origin_or_rp_id_is_refused(app, client, claims):
    _, authn = user_with_passkey(app)
    resp = passkey_login(client, authn, **claims)
    assert resp.status_code == 400 and signed_in_as(client) is None


def test_a_passkey_made_for_another_origin_is_not_added(app, client):
    uid = make_user(app)
    login(client)
    _, resp = add_passkey(client, origin="http://evil.example")
    assert resp.status_code == 400 and passkeys_of(app, uid) == []


def test_a_sign_in_without_user_verification_is_refused(app, client):
    _, authn = user_with_passkey(app)
    authn.uv = False
    assert passkey_login(client, authn).status_code == 400


def test_a_disabled_account_sees_the_inactive_page_and_gets_no_session(app, client):
    uid, authn = user_with_passkey(app)
    with app.app_context():
        db.session.get(User, uid).state = "disabled"
        db.session.commit()
    resp = passkey_login(client, authn)
    assert resp.status_code == 200 and "cannot sign in" in resp.get_data(as_text=True)
    assert signed_in_as(client) is None


def test_a_user_who_must_reset_sees_the_reset_page(app, client):
    uid, authn = user_with_passkey(app)
    with app.app_context():
        db.session.get(User, uid).state = "reset_required"
        db.session.commit()
    resp = passkey_login(client, authn)
    assert resp.status_code == 200 and "reset" in resp.get_data(as_text=True).lower()
    assert signed_in_as(client) is None


def test_a_counter_going_backwards_is_refused_and_recorded(app, client):
    uid, authn = user_with_passkey(app, authn=SoftAuthenticator(counting=True))
    assert passkey_login(client, authn).status_code == 303
    assert passkeys_of(app, uid)[0].sign_count == 1
    with app.app_context():
        db.session.get(Passkey, passkeys_of(app, uid)[0].id).sign_count = 5
        db.session.commit()
    resp = passkey_login(app.test_client(), authn)
    assert resp.status_code == 400 and "did not go up" in resp.get_data(as_text=True)
    [event] = events(app, "passkey_counter_regressed")
    assert event.data["stored"] == 5 and event.data["received"] == 2


@pytest.mark.parametrize("credential", ["", "{", "[]", "null", '{"id": 5}', '"x"',
                                        '{"id": "a", "rawId": "a", "response": {}}',
                                        "[" * 5000 + "]" * 5000, "x" * 60_000])
def test_malformed_answers_are_400(app, client, credential):
    user_with_passkey(app)
    passkey_login_options(client)
    resp = post_form(client, "/login/passkey", "/login", credential=credential)
    assert resp.status_code == 400
    login(client)
    resp = post_form(client, "/login/mfa/passkey", "/login/mfa", credential=credential)
    assert resp.status_code == 400


def test_oversized_and_malformed_requests_are_400(app, client):
    _, authn = user_with_passkey(app)
    token = csrf_from(client.get("/login").get_data(as_text=True))
    big = {"csrf_token": token, "credential": "x" * 200_000}
    assert client.post("/login/passkey", data=big).status_code == 400
    assert client.post("/login/passkey/options", data="{" * 100_000,
                       headers={"X-CSRFToken": token},
                       content_type="application/json").status_code == 400
    assert client.post("/login/passkey/options", data="{not json",
                       headers={"X-CSRFToken": token},
                       content_type="application/json").status_code == 200
    assert client.post("/login/passkey", data={"credential": "{}"}).status_code == 400
    assert client.post("/login/passkey/options").status_code == 400  # no CSRF token
    assert client.post("/account/passkeys/options", json={},
                       headers={"X-CSRFToken": token}).status_code == 401
    assert passkey_login(client, authn).status_code == 303
    token = csrf_from(client.get("/account/passkeys").get_data(as_text=True))
    assert client.post("/account/passkeys/options", data="[1,2",
                       headers={"X-CSRFToken": token},
                       content_type="application/json").status_code == 200
    assert client.post("/account/passkeys/options", data="x" * 100_000,
                       headers={"X-CSRFToken": token},
                       content_type="application/json").status_code == 400
    resp = client.post("/account/passkeys", data={"csrf_token": token, "credential": "{}"})
    assert resp.status_code == 400
    assert client.post("/account/passkeys/abc/remove",
                       data={"csrf_token": token}).status_code == 404


# --- the second step ----------------------------------------------------------------------------

def test_a_passkey_as_the_second_step_after_the_password(app, client):
    from authserver.accounts.models import BrowserSession
    uid, authn = user_with_passkey(app)
    resp = login(client)
    assert resp.headers["Location"].endswith("/login/mfa")
    page = client.get("/login/mfa").get_data(as_text=True)
    assert "Use a passkey" in page and 'name="code"' not in page  # no app: no code field
    opts = options(client, "/login/mfa/passkey/options", "/login/mfa").get_json()
    assert [c["id"] for c in opts["allowCredentials"]] == [authn.id]
    assert opts["userVerification"] == "preferred"
    token = csrf_from(page)
    answer = json.dumps(authn.get(opts))
    resp = client.post("/login/mfa/passkey", data={"csrf_token": token, "credential": answer})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/account")
    with app.app_context():
        bs = db.session.scalars(select(BrowserSession).order_by(BrowserSession.id.desc())).first()
        assert bs.amr == ["pwd", "hwk", "user", "mfa"]
    # the same answer again, in another browser holding a copy of the cookie: refused
    other = app.test_client()
    login(other)
    resp = post_form(other, "/login/mfa/passkey", "/login/mfa", credential=answer)
    assert resp.status_code == 400 and signed_in_as(other) is None


def test_a_passkey_of_another_user_is_refused_at_the_second_step(app, client):
    _, bobs = user_with_passkey(app, "bob")
    user_with_passkey(app, "alice")
    login(client)
    opts = options(client, "/login/mfa/passkey/options", "/login/mfa").get_json()
    resp = post_form(client, "/login/mfa/passkey", "/login/mfa",
                     credential=json.dumps(bobs.get(opts)))
    assert resp.status_code == 400 and signed_in_as(client) is None


def test_a_passwordless_only_passkey_is_not_a_second_step(app, client, settings):
    uid, authn = user_with_passkey(app, second_step=False)
    assert login(client).headers["Location"].endswith("/account")  # no second step


def test_a_second_step_passkey_counts_for_the_mfa_policy(settings):
    settings["MFA_REQUIRED"] = "all"
    app = create_app(settings)
    uid = make_user(app, "mia")
    c = app.test_client()
    assert login(c, "mia").headers["Location"].endswith("/login/mfa/enrol")
    with app.app_context():
        db.session.add(Passkey(user_id=uid, credential_id="abc", public_key=b"k", sign_count=0,
                               transports=[], name="Key", second_step=True, backed_up=False))
        db.session.commit()
    assert login(app.test_client(), "mia").headers["Location"].endswith("/login/mfa")
    with app.app_context():
        db.session.remove()
        from support import _empty_tables
        _empty_tables()


def test_forgot_password_never_removes_passkeys_nor_replaces_the_second_step(app, client):
    from reset_steps import NEW_PASSWORD, ResetActions, last_code
    uid, authn = user_with_passkey(app)
    reset = ResetActions(client)
    reset.send_code("alice")
    resp = reset.confirm("alice", last_code(app))
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert len(passkeys_of(app, uid)) == 1
    # the new password is one step: the second-step passkey is still asked for
    assert login(app.test_client(), password=NEW_PASSWORD).headers["Location"].endswith(
        "/login/mfa")
    assert passkey_login(app.test_client(), authn).status_code == 303


def test_the_id_token_of_a_passkey_sign_in_carries_its_amr(app, client):
    import base64
    from support import AuthActions, make_client
    _, authn = user_with_passkey(app)
    client_id, secret = make_client(app)
    assert passkey_login(client, authn).status_code == 303
    resp = AuthActions(client).code_flow(client_id, secret)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    payload = resp.get_json()["id_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["amr"] == ["hwk", "user", "mfa"]


# --- start-up ----------------------------------------------------------------------------------

def test_an_rp_id_that_does_not_match_the_issuer_stops_the_start(settings):
    settings.update(ISSUER="https://login.example.com", WEBAUTHN_RP_ID="example.org")
    with pytest.raises(RuntimeError, match="WEBAUTHN_RP_ID"):
        create_app(settings)
    settings.update(WEBAUTHN_RP_ID="example.com")  # a parent domain is allowed
    assert create_app(settings).config["WEBAUTHN_RP_ID"] == "example.com"


def test_an_ip_address_issuer_hides_passkeys_and_says_why(settings, caplog):
    settings["ISSUER"] = "http://127.0.0.1:5000"
    app = create_app(settings)
    with caplog.at_level(logging.WARNING):
        passkey.startup_notice(app)  # what wsgi.py and `authserver run` call at start-up
    assert any("passkeys are off" in r.getMessage() for r in caplog.records)
    page = app.test_client().get("/login").get_data(as_text=True)
    assert "Sign in with a passkey" not in page and "webauthn" not in page
    assert app.test_client().post("/login/passkey/options").status_code == 400  # no CSRF


def test_the_login_page_offers_passkeys_in_autofill(client):
    page = client.get("/login").get_data(as_text=True)
    assert 'autocomplete="username webauthn"' in page and "Sign in with a passkey" in page
    assert "/static/passkeys.js" in page


def test_a_wrong_password_in_between_keeps_the_passkey_offer(app, client):
    _, authn = user_with_passkey(app)
    passkey_login_options(client)
    assert login(client, password="wrong password").status_code == 200
    assert passkey_login(client, authn).status_code == 303


# --- administrators ------------------------------------------------------------------------------

def admin_client(app):
    make_user(app, "root", admin=True)
    c = app.test_client()
    assert login(c, "root").status_code == 303
    return c


def test_the_users_module_lists_and_removes_a_users_passkeys(app):
    uid, authn = user_with_passkey(app, name="Lost phone")
    admin = admin_client(app)
    page = admin.get(f"/admin/users/{uid}").get_data(as_text=True)
    assert "Lost phone" in page and "Remove passkey Lost phone" in page
    [pk] = passkeys_of(app, uid)
    resp = admin.post(f"/admin/users/{uid}/passkeys/{pk.id}/remove",
                      data={"csrf_token": csrf_from(page)})
    assert resp.status_code == 303 and passkeys_of(app, uid) == []
    assert "Removed the passkey" in admin.get(resp.headers["Location"]).get_data(as_text=True)
    assert passkey_login(app.test_client(), authn).status_code == 400
    [event] = events(app, "passkey_removed")
    assert event.actor_id is not None and event.user_id == uid
    with app.app_context():
        mail = db.session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "passkey_changed",
            OutboxMessage.subject.contains("removed"))).one()
        assert "by an administrator" in mail.text
    assert admin.post(f"/admin/users/{uid}/passkeys/{pk.id}/remove",
                      data={"csrf_token": csrf_from(page)}).status_code == 404
    assert admin.post(f"/admin/users/{uid}/passkeys/{pk.id}/remove").status_code == 400


def test_reset_two_step_sign_in_removes_only_second_step_passkeys(app):
    uid, second = user_with_passkey(app, name="Key")
    c = app.test_client()
    assert passkey_login(c, second).status_code == 303
    only_passwordless, resp = add_passkey(c, name="Passwordless", second_step=False)
    assert resp.status_code == 303
    admin = admin_client(app)
    page = admin.get(f"/admin/users/{uid}").get_data(as_text=True)
    assert "Reset two-step sign-in" in page
    resp = admin.post(f"/admin/users/{uid}/reset-mfa",
                      data={"csrf_token": csrf_from(page), "confirm": "yes"})
    assert resp.status_code == 303
    assert [p.name for p in passkeys_of(app, uid)] == ["Passwordless"]
    assert signed_in_as(c) is None  # signed out everywhere
    assert passkey_login(app.test_client(), second).status_code == 400
    assert passkey_login(app.test_client(), only_passwordless).status_code == 303
    assert login(app.test_client()).headers["Location"].endswith("/account")  # no second step


def test_the_admin_api_lists_removes_and_resets(app, client):
    from test_admin_api import service_token
    token, _ = service_token(app, client)
    auth = {"Authorization": f"Bearer {token}"}
    uid, authn = user_with_passkey(app, name="Laptop")
    c = app.test_client()
    passkey_login(c, authn)
    add_passkey(c, name="Tablet")
    resp = client.get(f"/api/admin/users/{uid}/passkeys", headers=auth)
    assert resp.status_code == 200
    items = resp.get_json()["items"]
    assert [i["name"] for i in items] == ["Laptop", "Tablet"]
    assert items[0]["second_step"] is True and items[0]["last_used_at"] is not None
    assert set(items[0]) == {"id", "name", "second_step", "backed_up", "transports",
                             "created_at", "last_used_at"}
    resp = client.delete(f"/api/admin/users/{uid}/passkeys/{items[1]['id']}", headers=auth)
    assert resp.status_code == 204
    assert client.delete(f"/api/admin/users/{uid}/passkeys/{items[1]['id']}",
                         headers=auth).status_code == 404
    assert client.get("/api/admin/users/999999/passkeys", headers=auth).status_code == 404
    resp = client.post(f"/api/admin/users/{uid}/reset-mfa", headers=auth)
    assert resp.status_code == 200 and resp.get_json()["mfa_enabled"] is False
    assert client.get(f"/api/admin/users/{uid}/passkeys", headers=auth).get_json() == \
        {"items": []}
    doc = client.get("/api/openapi.json").get_json()
    assert "delete" in doc["paths"]["/api/admin/users/{id}/passkeys/{passkey_id}"]
    assert "get" in doc["paths"]["/api/admin/users/{id}/passkeys"]


def test_the_rp_id_follows_an_issuer_changed_at_run(settings):
    """`authserver run --host localhost --port P` sets ISSUER after the app is built."""
    from authserver.config import check_webauthn, derive_webauthn
    settings["ISSUER"] = "http://127.0.0.1:5000"
    app = create_app(settings)
    assert app.config["PASSKEYS_DISABLED_REASON"]
    app.config["ISSUER"] = "http://localhost:5001"
    derive_webauthn(app.config)
    check_webauthn(app.config)
    assert app.config["WEBAUTHN_RP_ID"] == "localhost"
    assert app.config["WEBAUTHN_ORIGIN"] == "http://localhost:5001"
    assert app.config["PASSKEYS_DISABLED_REASON"] is None
