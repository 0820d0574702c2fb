"""What a person meets first on the hosted pages: an icon, and controls they can see."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

STYLE = (Path(__file__).resolve().parents[2] / "static" / "style.css").read_text()


def _luminance(hex_colour: str) -> float:
    rgb = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def css_var(name: str) -> str:
    return re.search(rf"--{name}:\s*(#[0-9a-fA-F]{{6}})", STYLE).group(1)


def resolve(value: str) -> str:
    m = re.fullmatch(r"var\(--([\w-]+)\)", value.strip())
    return css_var(m.group(1)) if m else value.strip()


def test_favicon_is_served(client):
    resp = client.get("/favicon.ico")
    assert resp.status_code == 200 and resp.mimetype == "image/svg+xml"
    assert b"<svg" in resp.data


def test_focus_ring_and_input_borders_reach_wcag_non_text_contrast():
    """WCAG 2.2 SC 1.4.11: 3:1 against the white card for focus indicators and input borders."""
    focus = re.search(r"input:focus[^{]*\{\s*outline:\s*3px solid ([^;]+);", STYLE).group(1)
    border = re.search(r"input\[type=text\][^{]*\{[^}]*border:1px solid ([^;]+);", STYLE).group(1)
    for colour in (resolve(focus), resolve(border)):
        assert contrast(colour, "#ffffff") >= 3.0, colour


def test_buttons_use_the_page_font():
    rule = re.search(r"button, \.button, input\[type=submit\] \{([^}]*)\}", STYLE).group(1)
    assert "font: inherit" in rule


def test_confirm_page_explains_submit_shows_the_password_rules_and_asks_for_digits(client):
    html = client.get("/forgot-password/confirm?username=alice").get_data(as_text=True)
    assert "then select <strong>Submit</strong>" in html
    assert "At least 8 characters" in html
    code_input = re.search(r"<input[^>]*name=\"code\"[^>]*>", html).group(0)
    assert 'inputmode="numeric"' in code_input and "autofocus" in code_input


def test_confirm_page_focuses_the_first_field_in_error(client):
    from support import csrf_from
    token = csrf_from(client.get("/forgot-password/confirm").get_data(as_text=True))
    html = client.post("/forgot-password/confirm", data={
        "csrf_token": token, "username": "alice", "code": "123456",
        "password": "x", "password_confirm": "y"}).get_data(as_text=True)
    focused = re.findall(r"<input[^>]*autofocus[^>]*>", html)
    assert len(focused) == 1 and 'name="password_confirm"' in focused[0]


def test_after_a_reset_the_login_page_says_every_session_was_signed_out(client):
    html = client.get("/login?reset=done").get_data(as_text=True)
    assert "Your password has been changed." in html
    assert "every session was signed out" in html


def test_an_unregistered_redirect_uri_is_explained_in_words_a_developer_understands(app, client):
    from support import make_client
    client_id, _ = make_client(app, "Payroll")
    html = client.get("/authorize", query_string={
        "response_type": "code", "client_id": client_id, "scope": "openid",
        "redirect_uri": "http://localhost:9999/callback", "state": "s",
        "code_challenge": "x" * 43, "code_challenge_method": "S256"}).get_data(as_text=True)
    assert "not registered for this application" in html
    assert "not supported by client" not in html


def test_the_sign_in_page_names_the_app_of_a_pending_request(app, client):
    from support import make_client, pkce_pair
    client_id, _ = make_client(app, "Payroll")
    _, challenge = pkce_pair()
    resp = client.get("/authorize", query_string={
        "response_type": "code", "client_id": client_id, "scope": "openid",
        "redirect_uri": "http://127.0.0.1:9999/callback", "state": "s",
        "code_challenge": challenge, "code_challenge_method": "S256"})
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    html = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "to continue to <strong>Payroll</strong>" in html
    assert "continue to" not in client.get("/login").get_data(as_text=True)


CONTINUE_USERS = re.compile(r'<a href="([^"]+)">Continue to the Users module</a>')


def _landing(resp) -> str:
    assert resp.status_code == 303, resp.get_data(as_text=True)
    return resp.headers["Location"]


def test_an_admin_sent_to_sign_in_by_the_users_module_is_offered_the_way_back(app, client, auth):
    """SPEC section 7: no pending request, so the sign-in lands on /account; /account then
    links to the Users module the administrator was going to, once."""
    from support import make_user
    make_user(app, "root", admin=True)
    resp = client.get("/admin/users")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/login")
    assert _landing(auth.login("root")).endswith("/account")
    html = client.get("/account").get_data(as_text=True)
    link = CONTINUE_USERS.search(html)
    assert link and link.group(1) == "/admin/users"
    assert html.index("Continue to the Users module") < html.index("<h1>")
    assert client.get(link.group(1)).status_code == 200
    assert not CONTINUE_USERS.search(client.get("/account").get_data(as_text=True))


def test_the_way_back_to_the_users_module_survives_the_second_step(app, client, auth):
    import pyotp
    from support import csrf_from, give_totp, make_user
    secret = give_totp(app, make_user(app, "root", admin=True))
    client.get("/admin/users")
    assert _landing(auth.login("root")).endswith("/login/mfa")
    token = csrf_from(client.get("/login/mfa").get_data(as_text=True))
    resp = client.post("/login/mfa", data={"csrf_token": token, "code": pyotp.TOTP(secret).now()})
    assert _landing(resp).endswith("/account")
    link = CONTINUE_USERS.search(client.get("/account").get_data(as_text=True))
    assert link and link.group(1) == "/admin/users"


def test_a_non_admin_sent_by_the_users_module_is_not_offered_it(app, client, auth):
    from support import make_user
    make_user(app)
    client.get("/admin/users")
    assert _landing(auth.login()).endswith("/account")
    assert "Users module" not in client.get("/account").get_data(as_text=True)


@pytest.mark.parametrize("next_url", ["/admin/evil", "/admin/users", "https://evil.example/",
                                      "//evil.example/admin/users"])
def test_a_next_from_the_request_is_never_offered_or_followed(app, client, auth, next_url):
    from support import make_user
    make_user(app, "root", admin=True)
    assert _landing(auth.login("root", next_url=next_url)).endswith("/account")
    html = client.get("/account").get_data(as_text=True)
    assert "Continue to" not in html and "evil" not in html
