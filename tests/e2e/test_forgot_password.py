"""Story 1 end to end: a code emailed over real SMTP resets the password (SPEC 1, 4, 5, 7)."""
from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

import pytest

from authserver.mail import sender
from support import PASSWORD, AuthActions, make_client, make_user, query_of
from reset_steps import NEW_PASSWORD, ResetActions, deliver, goes_to_confirm, flashes
from smtp_sink import code_in, parts, smtp_server, start_smtp  # noqa: F401  (fixtures)

REDIRECT_URI = "http://127.0.0.1:9999/callback"


@pytest.fixture
def app(smtp_server, app):
    """Every test here mails through the real SMTP sink (settings changed before the app)."""
    return app


def refresh(client, client_id, secret, token):
    return client.post("/token", data={"grant_type": "refresh_token", "refresh_token": token},
                       auth=(client_id, secret))


def signed_in_tokens(app, client_id, secret) -> dict:
    """Sign alice in on a browser of her own and get tokens for the app, as before the reset."""
    other = AuthActions(app.test_client())
    assert other.login().status_code == 303
    resp = other.code_flow(client_id, secret)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


@pytest.mark.parametrize("typed", ["alice", "alice@example.com", "  ALICE  "])
def test_code_from_a_real_smtp_server_resets_the_password(app, client, smtp_server, typed):
    make_user(app)
    client_id, secret = make_client(app)
    tokens = signed_in_tokens(app, client_id, secret)
    steps = ResetActions(client)

    assert goes_to_confirm(steps.send_code(typed), typed.strip())
    assert deliver(app) == 1
    (message,) = smtp_server.inbox.to("alice@example.com")
    assert "Your verification code" in message["Subject"]
    code = code_in(message)
    body = parts(message)
    assert f"\n{code}\n" in body["text/plain"]
    assert f">{code}</p>" in body["text/html"] and "monospace" in body["text/html"]
    assert "/forgot-password/confirm?username=alice" in body["text/html"]

    done = steps.confirm(typed.strip(), code)
    assert done.status_code == 303 and done.headers["Location"] == "/login?reset=done"
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Your password has been changed." in flashes(page)

    assert deliver(app) == 1
    (notice,) = smtp_server.inbox.to("alice@example.com", "Your password was changed")
    assert set(parts(notice)) == {"text/plain", "text/html"}

    assert AuthActions(app.test_client()).login(password=NEW_PASSWORD).status_code == 303
    old = AuthActions(app.test_client()).login(password=PASSWORD)
    assert old.status_code == 200
    assert "Incorrect user name or password." in old.get_data(as_text=True)
    resp = refresh(app.test_client(), client_id, secret, tokens["refresh_token"])
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"


def test_refresh_tokens_work_until_the_reset_and_never_after(app, client, smtp_server):
    make_user(app)
    client_id, secret = make_client(app)
    tokens = signed_in_tokens(app, client_id, secret)
    rotated = refresh(app.test_client(), client_id, secret, tokens["refresh_token"])
    assert rotated.status_code == 200
    steps = ResetActions(client)
    steps.send_code("alice")
    deliver(app)
    assert steps.confirm("alice", code_in(smtp_server.inbox.messages[-1])).status_code == 303
    resp = refresh(app.test_client(), client_id, secret, rotated.get_json()["refresh_token"])
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"


def test_browser_sessions_end_with_the_reset(app, client, smtp_server):
    make_user(app)
    other = AuthActions(app.test_client())
    other.login()
    assert other.client.get("/account").status_code == 200
    steps = ResetActions(client)
    steps.send_code("alice")
    deliver(app)
    steps.confirm("alice", code_in(smtp_server.inbox.messages[-1]))
    resp = other.client.get("/account")
    assert resp.status_code == 302 and urlsplit(resp.headers["Location"]).path == "/login"


def test_a_pending_authorization_request_survives_the_detour(app, client, smtp_server):
    make_user(app)
    client_id, _ = make_client(app)
    auth = AuthActions(client)
    start, _, params = auth.authorize(client_id)
    assert start.status_code == 302
    login_url = start.headers["Location"]
    assert urlsplit(login_url).path == "/login"
    page = client.get(login_url).get_data(as_text=True)
    assert 'href="/forgot-password"' in page

    steps = ResetActions(client)
    assert steps.send_code("alice").status_code == 303
    deliver(app)
    done = steps.confirm("alice", code_in(smtp_server.inbox.messages[-1]))
    assert done.headers["Location"] == "/login?reset=done"
    assert "Your password has been changed." in flashes(
        client.get("/login?reset=done").get_data(as_text=True))

    signed_in = auth.login(password=NEW_PASSWORD)
    assert signed_in.status_code == 303
    back = signed_in.headers["Location"]
    assert urlsplit(back).path == "/authorize" and query_of(back)["state"] == params["state"]
    resp = client.get(back)
    assert resp.status_code == 302 and resp.headers["Location"].startswith(REDIRECT_URI)
    assert query_of(resp.headers["Location"])["state"] == params["state"]
    assert query_of(resp.headers["Location"])["code"]


def test_mail_arrives_at_once_through_the_sender_thread(app, client, smtp_server):
    make_user(app)
    sender.start_sender(app, poll=30)  # only a commit's wake-up can deliver within the test
    try:
        assert ResetActions(client).send_code("alice").status_code == 303
        (message,) = smtp_server.inbox.wait_for(1, timeout=5)
    finally:
        sender.stop_sender(app)
    assert code_in(message)


def test_the_email_link_opens_the_confirm_page_with_the_name_filled_in(app, client,
                                                                       smtp_server):
    make_user(app)
    ResetActions(client).send_code("alice@example.com")
    deliver(app)
    link = f"http://127.0.0.1:5000/forgot-password/confirm?{urlencode({'username': 'alice'})}"
    assert link in parts(smtp_server.inbox.messages[-1])["text/plain"]
    page = client.get(link).get_data(as_text=True)
    assert re.search(r'<input [^>]*id="username"[^>]*value="alice"', page)
    assert "Resend code" in page and "Spam" in page
