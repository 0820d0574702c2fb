"""The Users module (SPEC story 2, section 7): search, profile, actions, licences, guards."""
import re

import pytest
from support import AuthActions, csrf_from, make_client, make_user
from sqlalchemy import select

from authserver.accounts.models import User
from authserver.audit import SecurityEvent
from authserver.extensions import db
from authserver.mail.models import OutboxMessage


def admin_session(app, auth):
    """An administrator signed in through /login; returns their id."""
    admin_id = make_user(app, "root", admin=True, name="Rosa Root")
    assert auth.login("root").status_code == 303
    return admin_id


def page_csrf(client, path):
    return csrf_from(client.get(path).get_data(as_text=True))


def post_action(client, user_id, action, confirm="yes"):
    token = page_csrf(client, f"/admin/users/{user_id}")
    return client.post(f"/admin/users/{user_id}/{action}",
                       data={"csrf_token": token, "confirm": confirm})


def user_row(app, user_id):
    with app.app_context():
        return db.session.get(User, user_id)


def licence_count(app, user_id):
    with app.app_context():
        return len(db.session.get(User, user_id).licences)


def events(app, name):
    with app.app_context():
        return list(db.session.scalars(select(SecurityEvent).where(SecurityEvent.name == name)))


def outbox(app):
    with app.app_context():
        return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def result_names(html):
    return re.findall(r"<td>([^<]+)</td>\s*<td>[^<]*</td>\s*<td>[^<]*@", html)


# --- search ------------------------------------------------------------------------------------

def test_search_matches_part_of_user_name_email_or_name_in_any_case(app, client, auth):
    admin_session(app, auth)
    make_user(app, "alice", name="Alice Liddell")
    make_user(app, "bob", email="robert@wonder.example", name="Bob Builder")
    make_user(app, "carol", name="Carol Danvers")
    for q, expected in [("LIC", ["alice"]), ("wonder", ["bob"]), ("danv", ["carol"]),
                        ("zzz", [])]:
        html = client.get("/admin/users", query_string={"q": q}).get_data(as_text=True)
        assert result_names(html) == expected, q


def test_search_treats_like_wildcards_as_plain_text(app, client, auth):
    admin_session(app, auth)
    make_user(app, "a_b")
    make_user(app, "axb")
    html = client.get("/admin/users?q=a_b").get_data(as_text=True)
    assert result_names(html) == ["a_b"]
    assert result_names(client.get("/admin/users?q=%25").get_data(as_text=True)) == []


def test_results_link_to_the_profile_and_show_the_state_as_a_badge(app, client, auth):
    admin_session(app, auth)
    uid = make_user(app, "dora", state="disabled")
    html = client.get("/admin/users?q=dora").get_data(as_text=True)
    assert f'<a href="/admin/users/{uid}">View profile</a>' in html
    assert 'class="badge badge-disabled"' in html


def test_search_is_paginated_with_page(app, client, auth):
    admin_session(app, auth)
    for i in range(23):
        make_user(app, f"user{i:02d}")
    first = client.get("/admin/users?q=user").get_data(as_text=True)
    second = client.get("/admin/users?q=user&page=2").get_data(as_text=True)
    assert len(result_names(first)) == 20 and "Next page" in first
    assert result_names(second) == ["user20", "user21", "user22"]
    assert "Next page" not in second and "Previous page" in second


def test_a_two_letter_term_finds_the_users_whose_names_begin_with_it(app, client, auth):
    admin_session(app, auth)
    make_user(app, "yuki.tanaka", name="Yuki Tanaka")
    make_user(app, "bob", email="yusuf@example.com", name="Bob Builder")
    make_user(app, "carol", name="Yusra Carol")
    make_user(app, "tanya.yu", name="Tanya Yu")  # "yu" inside, not at a beginning
    html = client.get("/admin/users?q=YU").get_data(as_text=True)
    assert result_names(html) == ["yuki.tanaka", "bob", "carol"]
    assert "begins with them" in html
    assert "begins with them" not in client.get("/admin/users?q=yuk").get_data(as_text=True)
    assert result_names(client.get("/admin/users?q=a%20yu").get_data(as_text=True)) == [
        "tanya.yu"]  # three characters: any part


def test_pages_of_a_common_term_stay_put_when_users_are_added(app, client, auth):
    """Creation order: a user added between two page loads comes last, so the next page
    neither repeats nor skips anyone."""
    admin_session(app, auth)
    names = [f"{first}.smith{i}" for i, first in enumerate(["zoe", "amy", "max"] * 15)]
    for name in names:
        make_user(app, name)
    first = result_names(client.get("/admin/users?q=smith").get_data(as_text=True))
    make_user(app, "aaron.smith")  # first by user name, last by creation
    second = result_names(client.get("/admin/users?q=smith&page=2").get_data(as_text=True))
    third = client.get("/admin/users?q=smith&page=3").get_data(as_text=True)
    assert first + second + result_names(third) == names + ["aaron.smith"]
    assert "Next page" not in third


def test_search_survives_nonsense_parameters(app, client, auth):
    admin_session(app, auth)
    for qs in ("page=-5", "page=abc", "page=99999999999999999999", "q=" + "x" * 5000,
               "q=%00%01"):
        assert client.get("/admin/users?" + qs).status_code == 200, qs


# --- profile -----------------------------------------------------------------------------------

def test_profile_shows_state_email_sessions_mfa_licences_and_events(app, client, auth):
    admin_id = admin_session(app, auth)
    make_client(app, "Payroll", requires_licence=True)
    uid = make_user(app, "erin", name="Erin Example")
    post_action(client, uid, "revoke-sessions")
    html = client.get(f"/admin/users/{uid}").get_data(as_text=True)
    for text in ("erin@example.com", "active", "Active sessions", "Two-step sign-in",
                 "Payroll", "Grant licence", "sessions revoked", "root", "never"):
        assert text in html, text
    assert events(app, "sessions_revoked")[0].actor_id == admin_id


def test_profile_of_unknown_or_absurd_id_is_404(app, client, auth):
    admin_session(app, auth)
    assert client.get("/admin/users/4242").status_code == 404
    assert client.get("/admin/users/99999999999999999999999").status_code == 404
    assert client.get("/admin/users/abc").status_code == 404


def test_profile_loads_the_confirm_script_from_a_file(app, client, auth):
    admin_session(app, auth)
    uid = make_user(app, "frank")
    html = client.get(f"/admin/users/{uid}").get_data(as_text=True)
    assert '<script src="/static/admin.js" defer></script>' in html
    assert "onclick" not in html and "<script>" not in html
    assert 'data-confirm="Reset the password of frank?' in html
    assert client.get("/static/admin.js").status_code == 200


# --- actions -----------------------------------------------------------------------------------

def test_reset_without_confirmation_asks_on_a_page_with_an_ok_button(app, client, auth):
    admin_session(app, auth)
    uid = make_user(app, "gina")
    resp = post_action(client, uid, "reset", confirm="")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert re.search(r'<button type="submit" class="primary">OK</button>', html)
    assert 'name="confirm" value="yes"' in html
    assert user_row(app, uid).state == "active" and outbox(app) == []


def test_reset_confirmed_requires_reset_ends_sessions_and_emails_a_code(app, client, auth):
    admin_id = admin_session(app, auth)
    uid = make_user(app, "hank")
    resp = post_action(client, uid, "reset")
    assert resp.status_code == 303 and resp.headers["Location"] == f"/admin/users/{uid}"
    assert "Password reset for hank" in client.get(resp.headers["Location"]).get_data(as_text=True)
    assert user_row(app, uid).state == "reset_required"
    (mail,) = outbox(app)
    assert mail.to == "hank@example.com"
    assert re.search(r"\b\d{6}\b", mail.text)
    assert "/forgot-password/confirm" in mail.text
    assert events(app, "admin_reset")[0].actor_id == admin_id


def test_send_temporary_password_emails_it_and_never_shows_it(app, client, auth):
    admin_id = admin_session(app, auth)
    uid = make_user(app, "ivan")
    resp = post_action(client, uid, "temporary-password")
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "A temporary password was emailed to ivan@example.com" in page
    (mail,) = outbox(app)
    password = re.search(r"^\s*(\S{5}-\S{5}-\S{5}-\S{5})\s*$", mail.text, re.M).group(1)
    assert password not in page and password not in resp.get_data(as_text=True)
    assert user_row(app, uid).state == "force_change_password"
    assert events(app, "temporary_password_sent")[0].actor_id == admin_id


def test_disable_then_enable(app, client, auth):
    admin_id = admin_session(app, auth)
    uid = make_user(app, "judy")
    post_action(client, uid, "disable")
    assert user_row(app, uid).state == "disabled"
    assert f'action="/admin/users/{uid}/enable"' in client.get(f"/admin/users/{uid}").get_data(
        as_text=True)
    post_action(client, uid, "enable")
    assert user_row(app, uid).state == "active"
    assert events(app, "user_disabled")[0].actor_id == admin_id
    assert events(app, "user_enabled")[0].actor_id == admin_id


def test_disable_ends_the_users_sessions(app, client, auth):
    uid = make_user(app, "kate")
    other = app.test_client()
    AuthActions(other).login("kate")
    assert other.get("/account").status_code == 200
    admin_session(app, auth)
    post_action(client, uid, "disable")
    assert other.get("/account").status_code == 302


def test_revoke_sessions_signs_the_user_out(app, client, auth):
    uid = make_user(app, "liam")
    other = app.test_client()
    AuthActions(other).login("liam")
    admin_session(app, auth)
    resp = post_action(client, uid, "revoke-sessions")
    assert "Signed liam out everywhere" in client.get(resp.headers["Location"]).get_data(
        as_text=True)
    assert other.get("/account").status_code == 302


def test_refused_transition_is_flashed_not_crashed(app, client, auth):
    admin_session(app, auth)
    uid = make_user(app, "mona", state="disabled")
    resp = post_action(client, uid, "reset")
    assert resp.status_code == 303
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "flash-error" in page and user_row(app, uid).state == "disabled"


def test_admin_cannot_disable_or_reset_their_own_account(app, client, auth):
    admin_id = admin_session(app, auth)
    for action in ("disable", "reset"):
        resp = post_action(client, admin_id, action)
        assert "your own account" in client.get(resp.headers["Location"]).get_data(as_text=True)
    assert user_row(app, admin_id).state == "active"


def test_own_profile_offers_no_button_that_would_be_refused(app, client, auth):
    admin_id = admin_session(app, auth)
    html = client.get(f"/admin/users/{admin_id}").get_data(as_text=True)
    for action in ("reset", "temporary-password", "disable"):
        assert f"/admin/users/{admin_id}/{action}" not in html
    assert "This is your own account" in html
    other = make_user(app, "bob")
    html = client.get(f"/admin/users/{other}").get_data(as_text=True)
    assert f"/admin/users/{other}/reset" in html


def test_unknown_action_is_404(app, client, auth):
    admin_session(app, auth)
    uid = make_user(app, "nina")
    assert post_action(client, uid, "explode").status_code == 404


def test_grant_and_remove_a_licence(app, client, auth):
    admin_id = admin_session(app, auth)
    client_id, _ = make_client(app, "Payroll", requires_licence=True)
    uid = make_user(app, "olga")
    token = page_csrf(client, f"/admin/users/{uid}")
    url = f"/admin/users/{uid}/licences/{client_id}"
    resp = client.post(url, data={"csrf_token": token, "grant": "yes"})
    assert "Granted the licence of olga for Payroll" in client.get(
        resp.headers["Location"]).get_data(as_text=True)
    assert licence_count(app, uid) == 1
    client.post(url, data={"csrf_token": token, "grant": "no"})
    assert licence_count(app, uid) == 0
    assert [e.actor_id for e in events(app, "licence_granted")] == [admin_id]
    assert client.post(f"/admin/users/{uid}/licences/nope",
                       data={"csrf_token": token, "grant": "yes"}).status_code == 404


# --- create user -------------------------------------------------------------------------------

def test_create_user_invites_with_an_emailed_temporary_password(app, client, auth):
    admin_id = admin_session(app, auth)
    token = page_csrf(client, "/admin/users/new")
    resp = client.post("/admin/users/new", data={
        "csrf_token": token, "username": "pat", "email": "pat@example.com", "name": "Pat Doe"})
    assert resp.status_code == 303
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Created pat: a temporary password was emailed to pat@example.com" in page
    (mail,) = outbox(app)
    assert mail.to == "pat@example.com" and "temporary password" in mail.text
    password = re.search(r"^\s*(\S{5}-\S{5}-\S{5}-\S{5})\s*$", mail.text, re.M).group(1)
    assert password not in page
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "pat"))
        assert user.state == "force_change_password" and not user.is_admin
    assert events(app, "user_created")[0].actor_id == admin_id


def test_create_user_refuses_a_taken_name_and_a_bad_address(app, client, auth):
    admin_session(app, auth)
    make_user(app, "quinn")
    token = page_csrf(client, "/admin/users/new")
    for data, message in [({"username": "QUINN", "email": "q2@example.com"}, "already exists"),
                          ({"username": "rita", "email": "not-an-address"}, "email")]:
        resp = client.post("/admin/users/new", data={"csrf_token": token, **data})
        assert resp.status_code == 200 and message in resp.get_data(as_text=True)
    assert outbox(app) == []


def test_create_user_can_make_an_administrator(app, client, auth):
    admin_session(app, auth)
    token = page_csrf(client, "/admin/users/new")
    client.post("/admin/users/new", data={"csrf_token": token, "username": "sam",
                                          "email": "sam@example.com", "admin": "y"})
    with app.app_context():
        assert db.session.scalar(select(User).where(User.username == "sam")).is_admin


# --- guards ------------------------------------------------------------------------------------

def test_anonymous_visitor_is_sent_to_login(app, client):
    resp = client.get("/admin/users")
    assert resp.status_code == 302 and resp.headers["Location"] == "/login"


def test_non_admin_gets_403_everywhere(app, client, auth):
    uid = make_user(app, "tina")
    auth.login("tina")
    token = page_csrf(client, "/account")
    assert client.get("/admin/users").status_code == 403
    assert client.get(f"/admin/users/{uid}").status_code == 403
    assert client.get("/admin/users/new").status_code == 403
    assert client.post(f"/admin/users/{uid}/disable",
                       data={"csrf_token": token, "confirm": "yes"}).status_code == 403
    assert user_row(app, uid).state == "active"


@pytest.mark.parametrize("path", ["/admin/users/new", "/admin/users/{uid}/reset",
                                  "/admin/users/{uid}/temporary-password",
                                  "/admin/users/{uid}/disable", "/admin/users/{uid}/enable",
                                  "/admin/users/{uid}/revoke-sessions",
                                  "/admin/users/{uid}/licences/{cid}"])
def test_every_admin_form_without_csrf_token_is_400(app, client, auth, path):
    admin_session(app, auth)
    uid = make_user(app, "uma")
    cid, _ = make_client(app, "Payroll", requires_licence=True)
    resp = client.post(path.format(uid=uid, cid=cid),
                       data={"confirm": "yes", "grant": "yes", "username": "x",
                             "email": "x@example.com"})
    assert resp.status_code == 400
    assert "expired" in resp.get_data(as_text=True)
    assert user_row(app, uid).state == "active" and outbox(app) == []
    assert licence_count(app, uid) == 0


def test_admin_link_on_the_account_page_leads_to_the_users_module(app, client, auth):
    admin_session(app, auth)
    assert 'href="/admin/users"' in client.get("/account").get_data(as_text=True)
