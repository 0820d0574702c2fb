"""Upstream sign-in through the hosted pages, with real providers over HTTP on loopback:
oidc-provider-mock (PyPI) for the happy paths, a ForgedProvider for every way an answer can
be wrong (SPEC section 10)."""
from __future__ import annotations

import pytest
from sqlalchemy import select
from support import (
    _empty_tables,
    csrf_from,
    give_totp,
    make_client,
    make_user,
    query_of,
)
from upstreamkit import ForgedProvider, mock_provider, path_of, query, walk

from authserver import create_app
from authserver.accounts import upstreams
from authserver.accounts.factors import upstream as flow
from authserver.accounts.models import UpstreamIdentity, User
from authserver.audit import SecurityEvent
from authserver.extensions import db
from authserver.observability import REGISTRY


@pytest.fixture(autouse=True)
def _fresh_cache():
    flow.forget_cache()
    yield
    flow.forget_cache()


@pytest.fixture
def forged():
    provider = ForgedProvider().start()
    yield provider
    provider.stop()


def add_upstream(app, name, issuer, client_id="authserver", **kw):
    with app.app_context():
        upstreams.add(name, issuer, client_id, "s3cret", **kw)


def link(app, username, name, subject):
    with app.app_context():
        upstreams.link(db.session.scalar(select(User).where(User.username == username)),
                       upstreams.find(name), subject)


def events(app, name):
    with app.app_context():
        return [e.data for e in db.session.scalars(
            select(SecurityEvent).where(SecurityEvent.name == name))]


def come_back(client, name, sub=None, next_url=None):
    path = f"/login/upstream/{name}" + (f"?next={next_url}" if next_url else "")
    resp = client.get(path)
    assert resp.status_code == 303, resp.get_data(as_text=True)
    back = walk(resp.headers["Location"], sub)
    return client.get(path_of(back))


# --- the happy paths, with oidc-provider-mock --------------------------------------------------

def test_login_page_has_a_button_per_upstream(app, client):
    add_upstream(app, "entra", "https://login.microsoftonline.com/common/v2.0",
                 label="Microsoft")
    add_upstream(app, "other", "https://id.example.com")
    html = client.get("/login").get_data(as_text=True)
    assert 'href="/login/upstream/entra">Sign in with Microsoft</a>' in html
    assert 'href="/login/upstream/other">Sign in with other</a>' in html


def test_linked_identity_signs_in_and_goes_on_to_the_app(app, client):
    uid = make_user(app, "alice")
    client_id, _ = make_client(app)
    with mock_provider([{"sub": "up-alice", "email": "alice@example.com",
                         "email_verified": True}]) as issuer:
        add_upstream(app, "mock", issuer, label="Mock ID")
        link(app, "alice", "mock", "up-alice")
        params = {"response_type": "code", "client_id": client_id,
                  "redirect_uri": "http://127.0.0.1:9999/callback", "scope": "openid",
                  "state": "xyz", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                  "code_challenge_method": "S256"}
        resp = client.get("/authorize", query_string=params)
        assert resp.status_code == 302 and "/login" in resp.headers["Location"]
        resp = client.get(resp.headers["Location"])  # the login page remembers next
        resp = come_back(client, "mock", sub="up-alice")
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert resp.headers["Location"].startswith("/authorize")
    resp = client.get(resp.headers["Location"])
    assert resp.status_code == 302
    q = query_of(resp.headers["Location"])
    assert q["state"] == "xyz" and q["code"]
    assert events(app, "upstream_signed_in")[0]["upstream"] == "mock"
    with app.app_context():
        assert db.session.scalar(select(UpstreamIdentity.last_used_at).where(
            UpstreamIdentity.user_id == uid)) is not None


def test_unlinked_identity_with_the_same_email_is_refused(app, client):
    make_user(app, "alice", email="alice@example.com")
    with mock_provider([{"sub": "evil", "email": "alice@example.com",
                         "email_verified": True}]) as issuer:
        add_upstream(app, "mock", issuer, label="Mock ID", create_users=True,
                     domains=["example.com"])
        resp = come_back(client, "mock", sub="evil")
    assert resp.status_code == 403
    assert "No account is connected" in resp.get_data(as_text=True)
    assert client.get("/account").status_code == 302  # not signed in
    assert events(app, "upstream_refused_unlinked")[0]["reason"] == "exists"


def test_create_users_allowed_and_refused_domain(app, client):
    with mock_provider([{"sub": "new-1", "email": "new@corp.example", "email_verified": True},
                        {"sub": "new-2", "email": "x@elsewhere.example",
                         "email_verified": True},
                        {"sub": "new-3", "email": "y@corp.example",
                         "email_verified": False}]) as issuer:
        add_upstream(app, "mock", issuer, create_users=True, domains=["corp.example"])
        assert come_back(client, "mock", sub="new-2").status_code == 403
        assert come_back(client, "mock", sub="new-3").status_code == 403
        resp = come_back(client, "mock", sub="new-1")
    assert resp.status_code == 303 and resp.headers["Location"] == "/account"
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "new@corp.example"))
        assert user.password_hash is None
        assert [i.subject for i in upstreams.identities_of(user)] == ["new-1"]
        assert db.session.scalar(select(User).where(User.email == "x@elsewhere.example")) is None


def test_disabled_account_refused_after_upstream_success(app, client):
    make_user(app, "alice", state="disabled")
    with mock_provider([{"sub": "up-alice"}]) as issuer:
        add_upstream(app, "mock", issuer)
        link(app, "alice", "mock", "up-alice")
        resp = come_back(client, "mock", sub="up-alice")
    assert resp.status_code == 200 and "inactive" in resp.get_data(as_text=True)
    assert client.get("/account").status_code == 302


# --- the callback refuses, with a ForgedProvider -----------------------------------------------

def _start(client, name="forged"):
    resp = client.get(f"/login/upstream/{name}")
    assert resp.status_code == 303
    return resp.headers["Location"]


@pytest.fixture
def linked(app, forged):
    make_user(app, "alice")
    add_upstream(app, "forged", forged.issuer)
    link(app, "alice", "forged", "forged-sub-1")
    return forged


def test_forged_happy_path_signs_in(client, linked):
    back = walk(_start(client))
    resp = client.get(path_of(back))
    assert resp.status_code == 303 and resp.headers["Location"] == "/account"
    assert client.get("/account").status_code == 200


@pytest.mark.parametrize("shape, reason", [
    ({"claims": {"iss": "http://127.0.0.1:1/other"}}, "bad_iss"),
    ({"claims": {"aud": "someone-else"}}, "bad_aud"),
    ({"claims": {"exp": 1000, "iat": 900}}, "expired"),
    ({"claims": {"nonce": "not-the-nonce"}}, "bad_nonce"),
    ({"alg_none": True}, "bad_alg"),
])
def test_bad_id_tokens_are_refused(app, client, linked, shape, reason):
    for attr, value in shape.items():
        setattr(linked, attr, value)
    resp = client.get(path_of(walk(_start(client))))
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert "did not work" in resp.get_data(as_text=True)
    assert client.get("/account").status_code == 302
    assert events(app, "upstream_failed")[-1]["reason"] == reason


def test_unknown_kid_refetches_the_jwks_once_then_refuses(app, client, linked):
    assert client.get(path_of(walk(_start(client)))).status_code == 303  # JWKS cached
    fetched = linked.jwks_fetches
    sign_out(client)
    linked.sign_with = linked.other_key
    resp = client.get(path_of(walk(_start(client))))
    assert resp.status_code == 400
    assert linked.jwks_fetches == fetched + 1
    assert events(app, "upstream_failed")[-1]["reason"] == "unknown_kid"


def test_wrong_and_replayed_state(app, client, linked):
    back = walk(_start(client))
    q = query(back)
    wrong = client.get(f"/login/upstream/forged/callback?code={q['code']}&state=nope")
    assert wrong.status_code == 400
    assert client.get(path_of(back)).status_code == 303
    sign_out(client)
    replay = client.get(path_of(back))
    assert replay.status_code == 400
    assert [e["reason"] for e in events(app, "upstream_failed")] == ["bad_state", "bad_state"]


def test_state_bound_to_the_browser(app, client, linked):
    back = walk(_start(client))
    other = app.test_client()
    assert other.get(path_of(back)).status_code == 400


def test_upstream_error_response(app, client, linked):
    linked.error = "access_denied"
    resp = client.get(path_of(walk(_start(client))))
    assert resp.status_code == 400 and "access_denied" in resp.get_data(as_text=True)


def test_upstream_down_is_a_clear_page_and_passwords_still_work(app, client, auth, linked):
    linked.down = True
    resp = client.get("/login/upstream/forged")
    assert resp.status_code == 502
    assert "could not be reached" in resp.get_data(as_text=True)
    assert auth.login().status_code == 303


def test_unknown_upstream_is_404(client):
    assert client.get("/login/upstream/nope").status_code == 404
    assert client.get("/login/upstream/nope/callback?state=x&code=y").status_code == 404


# --- the second step, Connect ------------------------------------------------------------------

# The second step after an upstream (asked; skipped only with trusted upstream mfa) and the
# no-licence page are shown in Chromium against a second Authserver process
# (tests/browser/test_upstream_signin.py). Here only what that upstream cannot send: ID
# tokens without amr, or with amr not a list; ["mfa"] is the control that the setting is on.

@pytest.mark.parametrize("amr, asked", [(["mfa"], False), (None, True), ("mfa", True),
                                        ([["mfa"]], True)])
def test_trusted_upstream_mfa_needs_a_list_with_mfa(settings, amr, asked):
    settings["UPSTREAM_TRUST_MFA"] = True
    app = create_app(settings)
    provider = ForgedProvider().start()
    try:
        uid = make_user(app, "alice")
        give_totp(app, uid)
        add_upstream(app, "forged", provider.issuer)
        link(app, "alice", "forged", "forged-sub-1")
        provider.claims = {"amr": amr}
        client = app.test_client()
        resp = client.get(path_of(walk(_start(client))))
        assert resp.headers["Location"] == ("/login/mfa" if asked else "/account")
    finally:
        provider.stop()
        with app.app_context():
            db.session.remove()
            _empty_tables()


def test_connect_from_account_then_sign_in_with_it(app, client, auth, forged):
    make_user(app, "alice")
    add_upstream(app, "forged", forged.issuer, label="Forged ID")
    assert auth.login().status_code == 303
    html = client.get("/account").get_data(as_text=True)
    assert "Connect Forged ID" in html
    resp = client.post("/account/upstream/forged/connect", data={"csrf_token": csrf_from(html)})
    assert resp.status_code == 303
    resp = client.get(path_of(walk(resp.headers["Location"])))
    assert resp.headers["Location"] == "/account"
    html = client.get("/account").get_data(as_text=True)
    assert "Disconnect Forged ID" in html
    assert events(app, "upstream_linked")[0]["how"] == "connect"
    sign_out(client)
    assert client.get(path_of(walk(_start(client)))).headers["Location"] == "/account"
    html = client.get("/account").get_data(as_text=True)
    resp = client.post("/account/upstream/forged/disconnect", data={"csrf_token": csrf_from(html)})
    assert resp.status_code == 303
    assert "Connect Forged ID" in client.get("/account").get_data(as_text=True)
    assert events(app, "upstream_unlinked")


def test_connect_needs_a_session_and_csrf(app, client, auth, forged):
    make_user(app, "alice")
    add_upstream(app, "forged", forged.issuer)
    assert client.post("/account/upstream/forged/connect").status_code == 400  # no CSRF token
    auth.login()
    assert client.post("/account/upstream/forged/connect").status_code == 400
    assert client.post("/account/upstream/forged/disconnect").status_code == 400


def test_a_connect_trip_finished_by_someone_else_links_nothing(app, client, auth, forged):
    make_user(app, "alice")
    add_upstream(app, "forged", forged.issuer)
    auth.login()
    html = client.get("/account").get_data(as_text=True)
    resp = client.post("/account/upstream/forged/connect", data={"csrf_token": csrf_from(html)})
    back = walk(resp.headers["Location"])
    sign_out(client)  # the same browser, signed out: the trip is not a sign-in
    assert client.get(path_of(back)).status_code == 400
    with app.app_context():
        assert db.session.scalar(select(UpstreamIdentity)) is None


def test_metrics_count_outcomes_by_provider(app, client, linked):
    def count(outcome):
        return REGISTRY.get_sample_value("authserver_upstream_signins_total",
                                         {"upstream": "forged", "outcome": outcome}) or 0
    before = count("signed_in"), count("bad_aud")
    client.get(path_of(walk(_start(client))))
    sign_out(client)
    linked.claims = {"aud": "other"}
    client.get(path_of(walk(_start(client))))
    assert (count("signed_in"), count("bad_aud")) == (before[0] + 1, before[1] + 1)


def sign_out(client):
    token = csrf_from(client.get("/logout").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 200
    assert client.get("/account").status_code == 302


@pytest.mark.parametrize("query_string", [
    "", "state=", "code=x", "state=" + "a" * 5000 + "&code=x", "state=x&code=" + "c" * 5000,
    "state[]=x", "error=access_denied", "state=%00&code=%ff",
])
def test_bad_callback_input_is_a_clear_page(app, client, linked, query_string):
    client.get("/login/upstream/forged")  # this browser has a trip in progress
    resp = client.get("/login/upstream/forged/callback?" + query_string)
    assert resp.status_code == 400
    assert "did not work" in resp.get_data(as_text=True)


def test_starting_trips_is_rate_limited(settings, forged):
    settings.update(RATELIMIT_ENABLED=True, RATELIMIT_LOGIN="3/minute",
                    RATELIMIT_STORAGE_URI="memory://")
    app = create_app(settings)
    try:
        add_upstream(app, "forged", forged.issuer)
        client = app.test_client()
        answers = [client.get("/login/upstream/forged").status_code for _ in range(5)]
        assert answers[:3] == [303, 303, 303] and answers[3:] == [429, 429]
    finally:
        with app.app_context():
            db.session.remove()
            _empty_tables()
