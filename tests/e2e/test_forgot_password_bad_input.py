"""Bad input on the forgot-password pages ends on a clear form error, never a 500 (SPEC 7):
empty, huge, non-digit and control-character values, missing or wrong CSRF tokens, passwords
that differ or that the policy refuses."""
from __future__ import annotations

import pytest

from support import PASSWORD, AuthActions, csrf_from, make_user
from reset_steps import NEW_PASSWORD, ResetActions, errors, last_code, queued

HUGE = "9" * 10_000


@pytest.fixture
def alice(app):
    return make_user(app)


@pytest.fixture
def steps(client):
    return ResetActions(client)


def page_errors(resp) -> list[str]:
    assert resp.status_code == 200, resp.status_code
    return errors(resp.get_data(as_text=True))


def post_forgot(client, **fields):
    token = csrf_from(client.get("/forgot-password").get_data(as_text=True))
    return client.post("/forgot-password", data={"csrf_token": token, **fields})


@pytest.mark.parametrize("username, message", [
    ("", "Enter your user name or email address."),
    ("   ", "Enter your user name or email address."),
    (HUGE, "Use at most 320 characters."),
    ("alice\x00", "Enter your user name or email address, without control characters."),
    ("al\nice", "Enter your user name or email address, without control characters."),
    ("alice\n", "Enter your user name or email address, without control characters."),
])
def test_send_code_refuses_an_unusable_name_on_the_form(app, client, alice, username, message):
    assert page_errors(post_forgot(client, username=username)) == [message]
    assert queued(app) == []


def test_send_code_without_the_field_is_a_form_error(app, client, alice):
    assert page_errors(post_forgot(client)) == ["Enter your user name or email address."]


def confirm_fields(**overrides) -> dict:
    fields = {"username": "alice", "code": "123456", "password": NEW_PASSWORD,
              "password_confirm": NEW_PASSWORD}
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


def post_confirm(client, **overrides):
    token = csrf_from(client.get("/forgot-password/confirm?username=alice").get_data(
        as_text=True))
    return client.post("/forgot-password/confirm",
                       data={"csrf_token": token, **confirm_fields(**overrides)})


@pytest.mark.parametrize("overrides, message", [
    ({"username": ""}, "Enter your user name or email address."),
    ({"username": None}, "Enter your user name or email address."),
    ({"username": HUGE}, "Use at most 320 characters."),
    ({"code": ""}, "Enter the code from the email."),
    ({"code": None}, "Enter the code from the email."),
    ({"code": HUGE}, "The code is the 6 digits from the email."),
    ({"code": "12345a"}, "The code is the 6 digits from the email."),
    ({"code": "12345"}, "The code is the 6 digits from the email."),
    ({"code": "\u0661\u0662\u0663\u0664\u0665\u0666"}, "The code is the 6 digits from the email."),
    ({"password": "", "password_confirm": ""}, "Choose a new password."),
    ({"password": None}, "Choose a new password."),
    ({"password_confirm": ""}, "Type the new password again."),
    ({"password": HUGE, "password_confirm": HUGE}, "Use at most 256 characters."),
    ({"password_confirm": NEW_PASSWORD + "!"}, "The two passwords are not the same."),
])
def test_confirm_refuses_bad_fields_on_the_form_and_spends_no_try(app, client, steps, alice,
                                                                  overrides, message):
    steps.send_code("alice")
    code = last_code(app)
    assert message in page_errors(post_confirm(client, **overrides))
    for _ in range(4):  # every try of the five is still there
        steps.confirm("alice", f"{(int(code) + 1) % 1_000_000:06d}")
    assert steps.confirm("alice", code).status_code == 303


@pytest.mark.parametrize("password, message", [
    ("short", "Use at least 8 characters."),
    ("1234567", "Use at least 8 characters."),
    ("password1", "This password is too common and easy to guess. Choose another."),
    ("iloveyou", "This password is too common and easy to guess. Choose another."),
    ("alice", "Use at least 8 characters."),
])
def test_confirm_says_why_a_password_is_refused_and_keeps_the_code(app, client, steps, alice,
                                                                    password, message):
    steps.send_code("alice")
    resp = steps.confirm("alice", last_code(app), password=password)
    assert page_errors(resp) == [message]
    assert steps.confirm("alice", last_code(app)).status_code == 303


def test_confirm_refuses_the_user_name_as_password(app, client, steps):
    make_user(app, "longusername")
    steps.send_code("longusername")
    resp = steps.confirm("longusername", last_code(app, "longusername@example.com"),
                         password="LongUserName")
    assert page_errors(resp) == ["Your password cannot be your user name or email address."]


def test_confirm_refuses_the_email_address_as_password(app, client, steps, alice):
    steps.send_code("alice")
    resp = steps.confirm("alice", last_code(app), password="alice@example.com")
    assert page_errors(resp) == ["Your password cannot be your user name or email address."]


def expired(resp) -> bool:
    return resp.status_code == 400 and "expired" in resp.get_data(as_text=True)


@pytest.mark.parametrize("token", [None, "", "not-a-token", "x" * 10_000])
def test_send_code_with_a_bad_csrf_token_is_refused_and_sends_nothing(app, client, alice,
                                                                     token):
    client.get("/forgot-password")
    data = {"username": "alice"} if token is None else {"username": "alice", "csrf_token": token}
    assert expired(client.post("/forgot-password", data=data))
    assert queued(app) == []


def test_send_code_with_a_token_from_another_browser_is_refused(app, client, alice):
    stranger = app.test_client()
    token = csrf_from(stranger.get("/forgot-password").get_data(as_text=True))
    client.get("/forgot-password")
    assert expired(client.post("/forgot-password", data={"username": "alice",
                                                         "csrf_token": token}))
    assert queued(app) == []


@pytest.mark.parametrize("token", [None, "forged"])
def test_confirm_with_a_bad_csrf_token_is_refused_and_spends_no_code(app, client, steps, alice,
                                                                     token):
    steps.send_code("alice")
    code = last_code(app)
    data = confirm_fields(code=code)
    if token is not None:
        data["csrf_token"] = token
    assert expired(client.post("/forgot-password/confirm", data=data))
    assert AuthActions(app.test_client()).login(password=PASSWORD).status_code == 303
    assert steps.confirm("alice", code).status_code == 303


@pytest.mark.parametrize("token", [None, "forged"])
def test_resend_with_a_bad_csrf_token_is_refused_and_sends_nothing(app, client, alice, token):
    client.get("/forgot-password/confirm?username=alice")
    data = {"username": "alice"} if token is None else {"username": "alice", "csrf_token": token}
    assert expired(client.post("/forgot-password/resend", data=data))
    assert queued(app) == []


@pytest.mark.parametrize("username", ["", HUGE, "alice\x00"])
def test_resend_with_an_unusable_name_sends_nothing_and_goes_back(app, client, alice, username):
    token = csrf_from(client.get("/forgot-password/confirm").get_data(as_text=True))
    resp = client.post("/forgot-password/resend", data={"username": username,
                                                        "csrf_token": token})
    assert resp.status_code == 303
    assert resp.headers["Location"].startswith("/forgot-password/confirm")
    assert queued(app) == []


@pytest.mark.parametrize("query", ["username=" + "a" * 10_000, "username=%00%0a",
                                   "username=%ff%fe", "next=//evil.example/"])
def test_the_pages_take_any_query_string(client, query):
    for path in ("/forgot-password", "/forgot-password/confirm"):
        assert client.get(f"{path}?{query}").status_code == 200


def test_get_on_resend_is_not_allowed(client):
    assert client.get("/forgot-password/resend").status_code == 405
