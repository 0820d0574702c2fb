"""What the sign-in pages read from the database (issue 16: the CPU of one sign-in). The
upstream buttons come from a per-process cache that add/remove clear; a correct password
reads the account twice (the lookup, and afresh after the check to decide what follows)."""
from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event

from authserver.accounts import upstreams
from authserver.extensions import db
from support import PASSWORD, AuthActions, make_user


@contextmanager
def statements(app):
    seen: list[str] = []
    with app.app_context():
        engine = db.engine
    listen = lambda *a: seen.append(" ".join(a[2].split()))  # noqa: E731 - (conn, cur, stmt..)
    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listen)


def test_the_upstream_buttons_follow_add_and_remove_at_once_and_are_cached(app, client):
    assert "Sign in with Corp ID" not in client.get("/login").get_data(as_text=True)
    with app.app_context():
        upstreams.add("corp", "http://127.0.0.1:9/corp", "cid", "secret", label="Corp ID")
    assert "Sign in with Corp ID" in client.get("/login").get_data(as_text=True)
    with statements(app) as seen:
        page = client.get("/login").get_data(as_text=True)
    assert "Sign in with Corp ID" in page and 'href="/login/upstream/corp"' in page
    assert not [s for s in seen if "upstreams" in s]
    with app.app_context():
        upstreams.remove("corp")
    assert "Sign in with Corp ID" not in client.get("/login").get_data(as_text=True)


def test_without_the_cache_the_page_reads_the_table_each_time(app, client):
    app.config["UPSTREAM_CACHE_TTL"] = 0
    client.get("/login")
    with statements(app) as seen:
        client.get("/login")
    assert [s for s in seen if "FROM upstreams" in s]


def test_a_sign_in_reads_the_account_twice(app, client):
    make_user(app, "alice")
    auth = AuthActions(client)
    token = auth.csrf("/login")
    with statements(app) as seen:
        resp = client.post("/login", data={"username": "alice", "password": PASSWORD,
                                           "csrf_token": token})
    assert resp.status_code == 303
    assert len([s for s in seen if s.startswith("SELECT") and "FROM users" in s]) == 2
