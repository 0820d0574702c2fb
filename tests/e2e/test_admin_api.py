"""The admin REST API (/api/admin/...): what each route does, with a valid admin token."""
import json
import re

import pytest
from support import make_client, make_user
from sqlalchemy import select

from authserver.accounts.models import User
from authserver.audit import SecurityEvent
from authserver.extensions import db
from authserver.mail.models import OutboxMessage

PROBLEM = "application/problem+json"


def service_token(app, client, scope="admin"):
    """A client_credentials token for a confidential client registered with scope admin."""
    cid, secret = make_client(app, "Admin tool", redirect_uris=(),
                              grant_types=["client_credentials"], scope="admin")
    resp = client.post("/token", data={"grant_type": "client_credentials", "scope": scope},
                       auth=(cid, secret))
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["access_token"], cid


@pytest.fixture
def api(app, client):
    token, cid = service_token(app, client)

    class Api:
        client_id = cid

        def __call__(self, method, path, **kwargs):
            headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
            return client.open(path, method=method, headers=headers, **kwargs)
    return Api()


def outbox(app):
    with app.app_context():
        return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def events(app, name):
    with app.app_context():
        return list(db.session.scalars(select(SecurityEvent).where(SecurityEvent.name == name)))


def state(app, user_id):
    with app.app_context():
        return db.session.get(User, user_id).state


# --- users -------------------------------------------------------------------------------------

def test_list_searches_and_pages_with_an_opaque_cursor(app, api):
    for name in ("anna", "annabel", "bert", "hannah", "joanna"):
        make_user(app, name)
    first = api("GET", "/api/admin/users?q=ANN&limit=2")
    assert first.status_code == 200
    body = first.get_json()
    assert [u["username"] for u in body["items"]] == ["anna", "annabel"]
    second = api("GET", "/api/admin/users", query_string={"q": "ann", "limit": 2,
                                                          "cursor": body["next_cursor"]})
    assert [u["username"] for u in second.get_json()["items"]] == ["hannah", "joanna"]
    assert second.get_json()["next_cursor"] is None


def test_cursor_pages_of_a_common_or_short_term_cover_each_match_once(app, api):
    names = [f"{first}.lee{i}" for i, first in enumerate(["yves", "bo", "yann"] * 4)]
    for name in names:
        make_user(app, name)
    for q, expected in [("lee", names), ("YA", [n for n in names if n.startswith("yann")])]:
        seen, cursor = [], None
        while True:
            query = {"q": q, "limit": 5, **({"cursor": cursor} if cursor else {})}
            body = api("GET", "/api/admin/users", query_string=query).get_json()
            seen += [u["username"] for u in body["items"]]
            if not (cursor := body["next_cursor"]):
                break
        assert seen == expected, q


def test_list_without_q_lists_everyone_with_summaries(app, api):
    uid = make_user(app, "carl", name="Carl Sagan", state="disabled")
    (item,) = api("GET", "/api/admin/users").get_json()["items"]
    assert item["id"] == uid and item["state"] == "disabled" and item["name"] == "Carl Sagan"
    assert item["last_login_at"] is None and item["is_admin"] is False


@pytest.mark.parametrize("qs", ["limit=0", "limit=101", "limit=abc", "limit=-1",
                                "limit=99999999999999999999", "cursor=garbage",
                                "cursor=eyJrIjoiZXZlbnRzIiwidiI6MX0"])
def test_list_refuses_bad_parameters_with_422(app, api, qs):
    resp = api("GET", "/api/admin/users?" + qs)
    assert resp.status_code == 422 and resp.content_type == PROBLEM
    assert resp.get_json()["status"] == 422


def test_create_invites_by_email_and_answers_201(app, api):
    resp = api("POST", "/api/admin/users", json={"username": "dina", "email": "dina@example.com",
                                                 "name": "Dina D"})
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["state"] == "force_change_password" and body["licences"] == []
    assert resp.headers["Location"].endswith(f"/api/admin/users/{body['id']}")
    (mail,) = outbox(app)
    assert mail.to == "dina@example.com"
    password = re.search(r"^\s*(\S{5}-\S{5}-\S{5}-\S{5})\s*$", mail.text, re.M).group(1)
    assert password not in resp.get_data(as_text=True)
    (event,) = events(app, "user_created")
    assert event.client_id == api.client_id and event.actor_id is None


def test_create_refuses_a_duplicate_with_409(app, api):
    make_user(app, "emil")
    for body in ({"username": "EMIL", "email": "other@example.com"},
                 {"username": "emil2", "email": "Emil@Example.com"}):
        resp = api("POST", "/api/admin/users", json=body)
        assert resp.status_code == 409 and resp.content_type == PROBLEM


@pytest.mark.parametrize("body", [
    {}, {"username": "x"}, {"email": "x@example.com"},
    {"username": "", "email": "x@example.com"},
    {"username": "bad name", "email": "x@example.com"},
    {"username": "x" * 151, "email": "x@example.com"},
    {"username": "ok", "email": "not-an-address"},
    {"username": "ok", "email": "x@example.com", "name": 5},
    {"username": "ok", "email": "x@example.com", "name": None},
    {"username": "ok", "email": "x@example.com", "name": "a\x00b"},
    {"username": "ok", "email": "x@example.com", "admin": "yes"},
    {"username": "ok", "email": "x@example.com", "extra": 1},
    {"username": ["ok"], "email": "x@example.com"},
    [1, 2], "text", 12, None,
])
def test_create_refuses_invalid_values_with_422_or_400(app, api, body):
    resp = api("POST", "/api/admin/users", data=json.dumps(body),
               content_type="application/json")
    assert resp.status_code in (400, 422) and resp.content_type == PROBLEM
    assert outbox(app) == []


def test_create_refuses_malformed_json_and_other_media_types(app, api):
    bad = api("POST", "/api/admin/users", data="{not json", content_type="application/json")
    assert bad.status_code == 400 and bad.content_type == PROBLEM
    deep = api("POST", "/api/admin/users", data="[" * 100_000, content_type="application/json")
    assert deep.status_code == 400
    form = api("POST", "/api/admin/users", data={"username": "x", "email": "x@example.com"})
    assert form.status_code == 415 and form.content_type == PROBLEM
    huge = api("POST", "/api/admin/users", data="x" * (2 * 1024 * 1024),
               content_type="application/json")
    assert huge.status_code == 413 and huge.content_type == PROBLEM


def test_get_one_user_with_sessions_and_licences(app, api):
    cid, _ = make_client(app, "Payroll", requires_licence=True)
    uid = make_user(app, "fay")
    assert api("PUT", f"/api/admin/users/{uid}/licences/{cid}").status_code == 204
    body = api("GET", f"/api/admin/users/{uid}").get_json()
    assert body["username"] == "fay" and body["licences"] == [cid]
    assert body["active_sessions"] == 0 and body["mfa_enabled"] is False


@pytest.mark.parametrize("path", ["/api/admin/users/999", "/api/admin/users/0",
                                  "/api/admin/users/99999999999999999999999",
                                  "/api/admin/users/abc", "/api/admin/users/-1",
                                  "/api/admin/users/999/disable"])
def test_unknown_or_absurd_ids_are_404_problems(app, api, path):
    method = "POST" if path.endswith("disable") else "GET"
    resp = api(method, path)
    assert resp.status_code == 404 and resp.content_type == PROBLEM


# --- actions -----------------------------------------------------------------------------------

def test_reset_password_answers_202_and_emails_a_code(app, api):
    uid = make_user(app, "gus")
    resp = api("POST", f"/api/admin/users/{uid}/reset-password")
    assert resp.status_code == 202 and resp.get_json()["state"] == "reset_required"
    (mail,) = outbox(app)
    assert re.search(r"\b\d{6}\b", mail.text) and "/forgot-password/confirm" in mail.text


def test_temporary_password_answers_202_and_emails_it(app, api):
    uid = make_user(app, "hal")
    resp = api("POST", f"/api/admin/users/{uid}/temporary-password")
    assert resp.status_code == 202
    body = resp.get_json()
    assert body["state"] == "force_change_password" and body["temp_password_expires_at"]
    (mail,) = outbox(app)
    assert mail.to == "hal@example.com" and mail.kind == "temporary_password"


def test_disable_enable_and_invalid_transitions(app, api):
    uid = make_user(app, "ida")
    assert api("POST", f"/api/admin/users/{uid}/disable").get_json()["state"] == "disabled"
    conflict = api("POST", f"/api/admin/users/{uid}/reset-password")
    assert conflict.status_code == 409 and conflict.content_type == PROBLEM
    assert api("POST", f"/api/admin/users/{uid}/temporary-password").status_code == 409
    assert api("POST", f"/api/admin/users/{uid}/enable").get_json()["state"] == "active"
    assert api("POST", f"/api/admin/users/{uid}/enable").status_code == 200
    (event,) = events(app, "user_disabled")
    assert event.client_id == api.client_id


def test_enable_refuses_to_skip_a_pending_reset(app, api):
    uid = make_user(app, "jon", state="reset_required")
    assert api("POST", f"/api/admin/users/{uid}/enable").status_code == 409
    assert state(app, uid) == "reset_required"


def test_delete_sessions_answers_204_and_ends_them(app, api, auth):
    uid = make_user(app, "kim")
    auth.login("kim")
    assert api("GET", f"/api/admin/users/{uid}").get_json()["active_sessions"] == 1
    resp = api("DELETE", f"/api/admin/users/{uid}/sessions")
    assert resp.status_code == 204 and resp.data == b""
    assert api("GET", f"/api/admin/users/{uid}").get_json()["active_sessions"] == 0


def test_licences_put_and_delete_are_idempotent(app, api):
    cid, _ = make_client(app, "Payroll", requires_licence=True)
    uid = make_user(app, "lea")
    for _ in range(2):
        assert api("PUT", f"/api/admin/users/{uid}/licences/{cid}").status_code == 204
    assert api("GET", f"/api/admin/users/{uid}").get_json()["licences"] == [cid]
    for _ in range(2):
        assert api("DELETE", f"/api/admin/users/{uid}/licences/{cid}").status_code == 204
    assert api("GET", f"/api/admin/users/{uid}").get_json()["licences"] == []
    assert api("PUT", f"/api/admin/users/{uid}/licences/nope").status_code == 404


# --- events ------------------------------------------------------------------------------------

def test_events_newest_first_filtered_by_user_with_a_cursor(app, api):
    uid = make_user(app, "max")
    other = make_user(app, "ned")
    for path in ("disable", "enable", "disable"):
        api("POST", f"/api/admin/users/{uid}/{path}")
    api("POST", f"/api/admin/users/{other}/disable")
    first = api("GET", f"/api/admin/events?user_id={uid}&limit=2").get_json()
    assert [e["name"] for e in first["items"]] == ["user_disabled", "user_enabled"]
    assert all(e["user_id"] == uid for e in first["items"])
    rest = api("GET", "/api/admin/events", query_string={
        "user_id": uid, "limit": 2, "cursor": first["next_cursor"]}).get_json()
    assert [e["name"] for e in rest["items"]] == ["user_disabled"] and rest["next_cursor"] is None
    assert api("GET", "/api/admin/events?user_id=abc").status_code == 422
    assert api("GET", "/api/admin/events?user_id=99999999999").status_code == 422


def test_openapi_document_is_public_and_lists_the_routes(client):
    resp = client.get("/api/openapi.json")
    assert resp.status_code == 200
    doc = resp.get_json()
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "/api/admin/users/{id}/reset-password" in doc["paths"]


def test_an_application_s_back_channel_logout_uri_is_set_and_removed(app, api):
    client_id, _ = make_client(app, "Listening app")
    assert api("GET", f"/api/admin/clients/{client_id}").get_json()[
        "backchannel_logout_uri"] is None
    url = f"/api/admin/clients/{client_id}/backchannel-logout-uri"
    resp = api("PUT", url, json={"backchannel_logout_uri": "https://app.example/bcl"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["backchannel_logout_uri"] == "https://app.example/bcl"
    assert [e.data["backchannel_logout_uri"]
            for e in events(app, "client_backchannel_logout_uri_changed")] == [
        "https://app.example/bcl"]
    for bad in ("http://app.example/bcl", "https://app.example/bcl#x", 5, "x" * 400):
        resp = api("PUT", url, json={"backchannel_logout_uri": bad})
        assert resp.status_code == 422 and resp.content_type == PROBLEM
    assert api("PUT", url, json={"other": 1}).status_code == 422
    assert api("PUT", "/api/admin/clients/nobody/backchannel-logout-uri",
               json={"backchannel_logout_uri": None}).status_code == 404
    resp = api("PUT", url, json={"backchannel_logout_uri": None})
    assert resp.get_json()["backchannel_logout_uri"] is None
