"""The authorization code + PKCE flow through the hosted pages, as a browser and app would."""
from support import make_client, make_user


def test_code_flow_issues_tokens_after_login(app, client, auth):
    make_user(app)
    client_id, secret = make_client(app)
    resp, verifier, params = auth.authorize(client_id)
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/login?next=")
    login = auth.login(next_url=None)
    assert login.status_code == 303
    resp = auth.code_flow(client_id, secret)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["token_type"] == "Bearer"
    assert {"access_token", "refresh_token", "id_token", "expires_in"} <= set(body)
    info = client.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200
    assert info.get_json()["preferred_username"] == "alice"



def test_userinfo_takes_the_token_in_a_form_body(app, client, auth):
    """RFC 6750 section 2.2: POST with access_token in the body works like the header."""
    make_user(app)
    client_id, secret = make_client(app)
    auth.login()
    token = auth.code_flow(client_id, secret).get_json()["access_token"]
    resp = client.post("/userinfo", data={"access_token": token})
    assert resp.status_code == 200
    assert resp.get_json()["preferred_username"] == "alice"
    assert client.post("/userinfo", data={"access_token": token + "x"}).status_code == 401
