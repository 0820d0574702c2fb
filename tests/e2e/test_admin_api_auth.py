"""The admin API refuses every caller but an admin token (issue 4, "What it must show" 4)."""
from datetime import timedelta

import pytest
from support import make_client, make_user
from sqlalchemy import select

from authserver.accounts.models import User
from authserver.audit import SecurityEvent
from authserver.extensions import db
from authserver.oauth.models import Client

PROBLEM = "application/problem+json"
CONSOLE_SCOPE = "openid profile email admin"


def service_client(app, scope="admin"):
    return make_client(app, "Admin tool", redirect_uris=(), grant_types=["client_credentials"],
                       scope=scope)


def client_token(client, cid, secret, scope=None):
    data = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    resp = client.post("/token", data=data, auth=(cid, secret))
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["access_token"]


def user_token(app, auth, username, scope="openid admin"):
    """Sign in through the hosted pages and run the code flow for a console app."""
    cid, secret = make_client(app, "Admin console", scope=CONSOLE_SCOPE)
    assert auth.login(username).status_code == 303
    resp = auth.code_flow(cid, secret, scope=scope)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["access_token"]


def get_users(client, token=None, **headers):
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return client.get("/api/admin/users", headers=headers)


def assert_problem(resp, status):
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.content_type == PROBLEM
    assert resp.get_json()["status"] == status


def test_no_token_is_401_with_a_bearer_challenge(app, client):
    resp = get_users(client)
    assert_problem(resp, 401)
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="authserver"'


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-jwt",
                                    "Bearer " + "a" * 9000, "Bearer a.b.c"])
def test_malformed_or_foreign_credentials_are_401(app, client, header):
    resp = client.get("/api/admin/users", headers={"Authorization": header})
    assert_problem(resp, 401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_tampered_token_is_401(app, client):
    cid, secret = service_client(app)
    token = client_token(client, cid, secret, "admin")
    head, body, sig = token.split(".")
    resp = get_users(client, f"{head}.{body}.{sig[:-4]}AAAA")
    assert_problem(resp, 401)
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


def test_client_token_with_admin_scope_is_accepted(app, client):
    cid, secret = service_client(app)
    assert get_users(client, client_token(client, cid, secret, "admin")).status_code == 200


def test_token_without_admin_scope_is_403(app, client):
    cid, secret = service_client(app, scope="admin profile")
    resp = get_users(client, client_token(client, cid, secret, "profile"))
    assert_problem(resp, 403)
    assert 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]


def test_client_whose_admin_scope_was_withdrawn_is_403(app, client):
    cid, secret = service_client(app)
    token = client_token(client, cid, secret, "admin")
    with app.app_context():
        db.session.scalar(select(Client).where(Client.client_id == cid)).scope = "profile"
        db.session.commit()
    assert_problem(get_users(client, token), 403)


def test_token_of_a_deleted_client_is_401(app, client):
    cid, secret = service_client(app)
    token = client_token(client, cid, secret, "admin")
    with app.app_context():
        db.session.delete(db.session.scalar(select(Client).where(Client.client_id == cid)))
        db.session.commit()
    assert_problem(get_users(client, token), 401)


def test_admin_users_token_is_accepted_and_names_the_actor(app, client, auth):
    admin_id = make_user(app, "root", admin=True)
    target = make_user(app, "bob")
    token = user_token(app, auth, "root")
    resp = client.post(f"/api/admin/users/{target}/disable",
                       headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    with app.app_context():
        event = db.session.scalar(select(SecurityEvent).where(
            SecurityEvent.name == "user_disabled"))
        assert event.actor_id == admin_id


def test_non_admin_users_token_with_admin_scope_is_403(app, client, auth):
    make_user(app, "eve")
    token = user_token(app, auth, "eve")
    resp = get_users(client, token)
    assert_problem(resp, 403)
    assert "administrator" in resp.get_json()["detail"]


def test_admin_users_token_without_admin_scope_is_403(app, client, auth):
    make_user(app, "root", admin=True)
    assert_problem(get_users(client, user_token(app, auth, "root", scope="openid")), 403)


def test_token_of_an_admin_since_disabled_is_401(app, client, auth):
    admin_id = make_user(app, "root", admin=True)
    token = user_token(app, auth, "root")
    with app.app_context():
        db.session.get(User, admin_id).state = "disabled"
        db.session.commit()
    assert_problem(get_users(client, token), 401)


def test_expired_token_is_401(app, client, frozen):
    cid, secret = service_client(app)
    token = client_token(client, cid, secret, "admin")
    assert get_users(client, token).status_code == 200
    frozen.tick(timedelta(minutes=61))
    resp = get_users(client, token)
    assert_problem(resp, 401)
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


def test_revoked_token_is_401(app, client):
    cid, secret = service_client(app)
    token = client_token(client, cid, secret, "admin")
    resp = client.post("/revoke", data={"token": token, "token_type_hint": "access_token"},
                       auth=(cid, secret))
    assert resp.status_code == 200
    assert_problem(get_users(client, token), 401)


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/admin/users"), ("POST", "/api/admin/users"), ("GET", "/api/admin/users/1"),
    ("POST", "/api/admin/users/1/reset-password"),
    ("POST", "/api/admin/users/1/temporary-password"), ("POST", "/api/admin/users/1/disable"),
    ("POST", "/api/admin/users/1/enable"), ("DELETE", "/api/admin/users/1/sessions"),
    ("PUT", "/api/admin/users/1/licences/x"), ("DELETE", "/api/admin/users/1/licences/x"),
    ("GET", "/api/admin/events")])
def test_every_route_refuses_an_anonymous_caller(app, client, method, path):
    assert_problem(client.open(path, method=method), 401)
