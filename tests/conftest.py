"""Shared fixtures: settings → app → client, a database with the Alembic schema, keys,
frozen time and a live server. Plain helpers live in tests/support.py."""
from __future__ import annotations

import os
from datetime import datetime, timezone

import freezegun
import pytest
from freezegun import freeze_time
from jinja2 import StrictUndefined
from sqlalchemy import text

from authserver import create_app
from authserver.extensions import db
from authserver.schema import init_schema
from authserver.tokens.keyfiles import write_key_set
from authserver.tokens.keyset import new_key_set
from support import (FROZEN_AT, AuthActions, LiveServer, _empty_tables, base_settings,
                     database_url, free_port, is_postgres, make_client, make_user)

# pytest's own timings (--durations, the junit report) must read the real clock while a
# test has frozen it, or a frozen test reports an absurd duration. Only _pytest.timing: the
# ignore list is also matched against the 5 frames above every clock read, and a test
# function calling, say, pyotp directly sits right above _pytest.python's frames, so
# ignoring all of "_pytest" would unfreeze those reads.
freezegun.configure(extend_ignore_list=["_pytest.timing"])


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys")
    write_key_set(str(path), new_key_set(datetime(2020, 1, 1, tzinfo=timezone.utc)))
    return str(path)


@pytest.fixture(scope="session")
def _database(tmp_path_factory, keys_dir):
    """The schema, once per session, through Alembic exactly as `authserver init` builds it."""
    root = tmp_path_factory.mktemp("db")
    url = database_url(root)
    app = create_app(base_settings(str(root), keys_dir, url))
    with app.app_context():
        if is_postgres():
            db.drop_all()
            db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
            db.session.commit()
    init_schema(app)
    return url


@pytest.fixture
def settings(tmp_path, keys_dir, _database, monkeypatch):
    """The config dict; other fixtures or tests extend it before `app` is built."""
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    return base_settings(str(tmp_path), keys_dir, _database)


@pytest.fixture
def app(settings):
    app = create_app(settings)
    app.jinja_env.undefined = StrictUndefined
    yield app
    with app.app_context():
        db.session.remove()
        _empty_tables()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def frozen():
    with freeze_time(FROZEN_AT) as f:
        yield f


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def live_server(settings):
    """The app served on 127.0.0.1 at a free port, with ISSUER set to that URL."""
    port = free_port()
    settings["ISSUER"] = f"http://127.0.0.1:{port}"
    app = create_app(settings)
    server = LiveServer(app, port).start()
    yield server
    server.stop()
    with app.app_context():
        db.session.remove()
        _empty_tables()


@pytest.fixture
def rp(app):
    """A signed-up user (alice) and a confidential client: (client_id, client_secret)."""
    make_user(app)
    return make_client(app)


@pytest.fixture
def signed_in(auth, rp):
    """rp, with alice signed in at the issuer."""
    assert auth.login().status_code == 303
    return rp


@pytest.fixture(scope="session")
def playwright_driver():
    """The run's one sync Playwright (a second in the same thread refuses to start), shared by
    tests/browser and tests/prod/https_recipe; skips without Debian's chromium."""
    chromium = os.environ.get("AUTHSERVER_CHROMIUM") or "/usr/bin/chromium"
    if not os.path.exists(chromium):
        pytest.skip("install Debian's chromium (apt-get install chromium) to run browser tests")
    from playwright.sync_api import sync_playwright  # only once chromium is known to exist
    with sync_playwright() as p:
        yield p
