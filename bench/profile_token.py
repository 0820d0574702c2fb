"""Where one token request's time goes, in process, set up exactly as the tests set up.

    .venv/bin/python bench/profile_token.py [--scenario client_credentials|refresh_token|
        discovery|jwks] [--n 2000] [--db-url URL] [--cprofile 25]

A fresh app from tests/support.py (base_settings, make_user, make_client, AuthActions:
the same factories the tests use) on a temp SQLite file, or on --db-url (a PostgreSQL
database you made, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/authserver_profile).
Flask's test client sends N requests; printed: CPU ms per request (the test client's own
work included, so compare before/after rather than with bench/run.py), the SQL statements
of one request, and with --cprofile the top functions by own time.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from sqlalchemy import event  # noqa: E402
from support import AuthActions, base_settings, make_client, make_user  # noqa: E402

from authserver import create_app  # noqa: E402
from authserver.extensions import db  # noqa: E402
from authserver.schema import init_schema  # noqa: E402
from authserver.tokens.keyfiles import write_key_set  # noqa: E402
from authserver.tokens.keyring import start_app  # noqa: E402
from authserver.tokens.keyset import new_key_set  # noqa: E402


def build(db_url: str | None, **extra):
    """A fresh app as a server runs it (hooks, a pool, the key set adopted), with `extra`
    settings on top, and one user, `benchuser`."""
    root = tempfile.mkdtemp(prefix="authserver-profile-")
    Path(f"{root}/keys").mkdir()
    write_key_set(f"{root}/keys", new_key_set(datetime.now(timezone.utc)))  # as tests/conftest.py
    settings = base_settings(root, f"{root}/keys", db_url or f"sqlite:///{root}/a.db")
    settings["TESTING"] = False  # the hooks a server runs (not the test shortcuts)
    settings.pop("SQLALCHEMY_ENGINE_OPTIONS", None)  # a pool, as a server has (tests use none)
    settings.update(extra)
    app = create_app(settings)
    init_schema(app)
    start_app(app)  # as wsgi.py: the key set adopted before the first request
    make_user(app, "benchuser")
    return app


def statements_of(app, send) -> list[str]:
    """The SQL statements one call of `send` runs."""
    statements = []
    with app.app_context():
        listen = lambda *a: statements.append(a[2])  # noqa: E731 - (conn, cursor, statement, ...)
        event.listen(db.engine, "before_cursor_execute", listen)
        send()
        event.remove(db.engine, "before_cursor_execute", listen)
    return statements


def requester(app, scenario: str):
    """A function sending one request of the scenario (a refresh chain keeps its token)."""
    client = app.test_client()
    if scenario in ("discovery", "jwks"):
        path = {"discovery": "/.well-known/openid-configuration",
                "jwks": "/.well-known/jwks.json"}[scenario]
        return lambda: client.get(path)
    if scenario == "client_credentials":
        cid, secret = make_client(app, "Service", grant_types=["client_credentials"],
                                  scope="profile", redirect_uris=())
        return lambda: client.post("/token", data={"grant_type": "client_credentials"},
                                   auth=(cid, secret))
    cid, secret = make_client(app)
    auth = AuthActions(client)
    auth.login("benchuser")
    chain = {"token": auth.code_flow(cid, secret, scope="openid profile offline_access")
             .get_json()["refresh_token"]}

    def refresh():
        resp = client.post("/token", data={"grant_type": "refresh_token",
                                           "refresh_token": chain["token"]}, auth=(cid, secret))
        chain["token"] = resp.get_json()["refresh_token"]
        return resp
    return refresh


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="client_credentials",
                        choices=("client_credentials", "refresh_token", "discovery", "jwks"))
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--db-url", default=None)
    parser.add_argument("--cprofile", type=int, default=0, metavar="TOP")
    args = parser.parse_args()
    app = build(args.db_url)
    send = requester(app, args.scenario)
    for _ in range(50):
        assert send().status_code == 200
    statements = statements_of(app, send)
    started = time.process_time()
    for _ in range(args.n):
        send()
    cpu_ms = (time.process_time() - started) * 1000 / args.n
    print(f"{args.scenario}: {cpu_ms:.3f} CPU ms per request over {args.n} (test client included)")
    print(f"SQL of one request ({len(statements)}):")
    for sql in statements:
        print("  " + " ".join(sql.split())[:200])
    if args.cprofile:
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.n):
            send()
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.cprofile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
