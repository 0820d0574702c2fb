"""A database outage under load: 503 (never a hang, never a 500), then recovery without
restarting the server, and nothing committed before the outage is lost.

The test runs its own PostgreSQL cluster (initdb and pg_ctl into a temporary folder, on a
free port), so it can stop and start it; as root, the cluster runs as user postgres.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import psycopg
import pytest
import requests

from authserver import create_app
from prodkit import (Deployment, Gunicorn, browser, client_credentials, code_in, csrf_from,
                     deployment_env, exchange, free_port, get_code, mail_files, needs_postgres,
                     refresh, seed, wait_for_mail)

PG_BIN = Path("/usr/lib/postgresql/15/bin")
NEW_PASSWORD = "Quiet-Harbour-Lamp-77"
OUTAGE = 3.0  # seconds the database stays down
DB_PATHS = ("/readyz", "/userinfo", "/account")  # 503 while the database is down
# client_credentials needs no row once the client is in the per-process client cache
# (CLIENT_CACHE_TTL): it may keep answering 200, or 503 when the cache has to ask the database.
CACHED_PATHS = ("/token",)
FREE_PATHS = ("/.well-known/openid-configuration", "/.well-known/jwks.json")  # never need it


class Cluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1:port in a folder of its own."""

    def __init__(self, port: int):
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="authserver-pg-"))
        self.data, self.log = self.root / "data", self.root / "postgres.log"
        if os.geteuid() == 0:  # initdb refuses root; the folder goes to the postgres user
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str, timeout: float = 60) -> None:
        cmd = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stdout}\n{proc.stderr}"

    def init(self) -> Cluster:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")
        return self

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "-o",
                  f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def remove(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def cluster():
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"needs PostgreSQL 15 server binaries in {PG_BIN} (apt-get install "
                    "postgresql-15)")
    c = Cluster(free_port()).init()
    try:
        c.start()
        with psycopg.connect(f"host=127.0.0.1 port={c.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute("CREATE DATABASE authserver")
        yield c
    finally:
        c.remove()


@pytest.fixture
def served(cluster, tmp_path):
    """One gunicorn (one worker, 4 threads) on the private cluster, seeded through the CLI."""
    port = free_port()
    env = deployment_env(cluster.url("authserver"), tmp_path, f"http://127.0.0.1:{port}",
                         AUTHSERVER_AUTHORIZATION_CODE_TTL="300")
    dep = Deployment(env, cluster.url("authserver"), tmp_path)
    server = Gunicorn("server", env, port, tmp_path, workers=1, threads=4)
    try:
        seed(dep, users=("alice",), servers=[server])
        yield dep
    finally:
        server.stop()


class Load:
    """A few threads looping over discovery, JWKS, /readyz, /token, /userinfo and /login,
    bounded in count and time; every answer is kept with when it started and how long it took."""

    def __init__(self, base: str, dep: Deployment, access_token: str, cookies: dict,
                 threads: int = 4):
        self.base, self.dep, self.access_token, self.cookies = base, dep, access_token, cookies
        self.results: list[tuple[float, str, object, float, requests.Response | None]] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop, args=(i,)) for i in range(threads)]

    def _call(self, path: str) -> requests.Response:
        if path == "/token":
            return client_credentials(self.base, self.dep, timeout=5)
        headers = {"Authorization": f"Bearer {self.access_token}"} if path == "/userinfo" else {}
        cookies = self.cookies if path == "/account" else None  # a signed-in person's page
        return requests.get(self.base + path, headers=headers, cookies=cookies, timeout=5,
                            allow_redirects=False)

    def _loop(self, offset: int) -> None:
        paths = [*FREE_PATHS, *DB_PATHS, "/login"]
        deadline = time.monotonic() + 60
        for n in range(3000):
            if self.stopping.is_set() or time.monotonic() > deadline:
                return
            path = paths[(n + offset) % len(paths)]
            started = time.monotonic()
            try:
                resp = self._call(path)
                outcome: object = resp.status_code
            except requests.RequestException as exc:
                resp, outcome = None, type(exc).__name__
            with self.lock:
                self.results.append((started, path, outcome, time.monotonic() - started, resp))
            time.sleep(0.01)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)

    def between(self, start: float, end: float):
        return [r for r in self.results if start <= r[0] and r[0] + r[3] <= end]


def wait_until_ready(base: str, timeout: float = 15) -> float:
    """Seconds until /readyz answers 200 again (polled, bounded)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if requests.get(base + "/readyz", timeout=5).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise AssertionError(f"/readyz not 200 within {timeout} s of the database coming back")


@pytest.mark.postgres
@pytest.mark.slow
@needs_postgres
def test_outage_answers_503_then_recovers_without_losing_anything(cluster, served):
    """pg_ctl stop -m fast under load, 3 s down, pg_ctl start; the server is never restarted."""
    dep, base = served, served.servers[0].url
    # Written before the outage: a refresh token, an unredeemed code, a reset code and its mail.
    web = browser()
    code, verifier, _ = get_code(web, base, dep.client_id)
    tokens = exchange(base, dep, code, verifier).json()
    pending_code, pending_verifier, _ = get_code(web, base, dep.client_id)
    before = mail_files(dep.mail_dir)
    forgot = browser()
    token = csrf_from(forgot.get(base + "/forgot-password", timeout=10).text)
    assert forgot.post(base + "/forgot-password", data={"username": "alice", "csrf_token": token},
                       allow_redirects=False, timeout=10).status_code == 303
    reset_code = code_in(wait_for_mail(dep.mail_dir, "reset_code", "alice@example.com", before))
    rows_before = dep.sql("SELECT id, kind FROM outbox_messages ORDER BY id")
    tokens_before = dep.sql("SELECT count(*) FROM refresh_tokens")

    with Load(base, dep, tokens["access_token"], web.cookies.get_dict()) as load:
        time.sleep(1.0)
        stop_began = time.monotonic()
        cluster.stop()
        down_from = time.monotonic()
        time.sleep(OUTAGE)
        down_until = time.monotonic()
        cluster.start()
        recovered_in = wait_until_ready(base)
        time.sleep(1.0)
        up_from = time.monotonic() - 1.0

    report(load, stop_began, down_from, down_until, up_from, recovered_in)
    failed = [r[:4] for r in load.results if not isinstance(r[2], int)]
    assert not failed, f"requests hung or failed: {failed}"
    errors = [line for line in served.servers[0].stderr().splitlines()
              if "exc_type" in line or "Error handling request" in line]
    assert not [r for r in load.results if r[2] == 500], errors
    outage = load.between(down_from, down_until)
    by_path = defaultdict(Counter)
    for _, path, status, _, _resp in outage:
        by_path[path][status] += 1
    for path in FREE_PATHS:
        assert set(by_path[path]) == {200}, (path, by_path[path])
    for path in DB_PATHS:
        assert set(by_path[path]) == {503} and sum(by_path[path].values()) >= 3, (path,
                                                                                  by_path[path])
    assert set(by_path["/login"]) <= {200, 503}
    for path in CACHED_PATHS:
        assert set(by_path[path]) <= {200, 503}, (path, by_path[path])
    for _, path, status, _, resp in outage:
        if status == 503:
            assert resp.headers["Retry-After"].isdigit()
            kind = resp.headers["Content-Type"]
            page = path in ("/account", "/login")  # hosted pages answer HTML, the APIs JSON
            assert kind.startswith("text/html") if page else "json" in kind
    for _, path, status, _, resp in outage:
        if path == "/token" and status == 503:
            assert resp.json()["error"] == "temporarily_unavailable"
    assert max(r[3] for r in outage) < 2.0, "a request took too long while the database was down"
    after = load.between(up_from, float("inf"))
    assert after and {r[2] for r in after} == {200}
    assert recovered_in < 5.0

    # Nothing written before the outage is lost, and each of it still works.
    assert dep.sql("SELECT id, kind FROM outbox_messages ORDER BY id")[:len(rows_before)] \
        == rows_before
    assert dep.sql("SELECT count(*) FROM refresh_tokens") >= tokens_before
    assert refresh(base, dep, tokens["refresh_token"]).status_code == 200
    assert exchange(base, dep, pending_code, pending_verifier).status_code == 200
    token = csrf_from(forgot.get(base + "/forgot-password/confirm?username=alice", timeout=10).text)
    done = forgot.post(base + "/forgot-password/confirm", allow_redirects=False, timeout=10,
                       data={"username": "alice", "code": reset_code, "password": NEW_PASSWORD,
                             "password_confirm": NEW_PASSWORD, "csrf_token": token})
    assert done.status_code == 303, done.text[:300]
    # The mail sender thread lived through the outage: new mail still goes out at once.
    wait_for_mail(dep.mail_dir, "password_changed", "alice@example.com", before, timeout=10)


def report(load: Load, stop_began, down_from, down_until, up_from, recovered_in) -> None:
    def summary(rows):
        counts = Counter((path, status) for _, path, status, _, _ in rows)
        slowest = max((r[3] for r in rows), default=0)
        return dict(sorted(counts.items())), f"slowest {slowest * 1000:.0f} ms"

    print(f"\npg_ctl stop took {down_from - stop_began:.2f} s; database down {OUTAGE} s; "
          f"/readyz 200 again {recovered_in:.2f} s after pg_ctl start returned")
    print("before :", *summary(load.between(0, stop_began)))
    print("stopping:", *summary([r for r in load.results
                                 if r[0] < down_from and r[0] + r[3] > stop_began]))
    print("down   :", *summary(load.between(down_from, down_until)))
    print("after  :", *summary(load.between(up_from, float("inf"))))


def test_unreachable_database_answers_503_within_the_connect_timeout(tmp_path, keys_dir):
    """A database host that accepts but never answers (a dead peer, a black hole) costs a
    request DATABASE_CONNECT_TIMEOUT seconds and a 503, not a hung worker."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes the handshake; nobody ever speaks
        port = silent.getsockname()[1]
        app = create_app({"TESTING": True, "SECRET_KEY": "outage-test-secret-0123456789abcdef",
                          "INSTANCE_PATH": str(tmp_path), "KEYS_DIR": keys_dir,
                          "DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{port}/x",
                          "DATABASE_CONNECT_TIMEOUT": 1, "MAIL_TRANSPORT": "memory",
                          "MAIL_SENDER_THREAD": False, "RATELIMIT_ENABLED": False})
        answers = []
        started = time.monotonic()
        asking = threading.Thread(target=lambda: answers.append(
            app.test_client().get("/readyz")), daemon=True)
        asking.start()
        asking.join(8)  # bounded: without a connect timeout the request would hang for minutes
        elapsed = time.monotonic() - started
    assert answers, f"/readyz still hanging after {elapsed:.1f} s against a silent database"
    assert answers[0].status_code == 503 and answers[0].headers["Retry-After"].isdigit()
    assert elapsed < 4, f"/readyz took {elapsed:.1f} s against a silent database"


@pytest.mark.postgres
@needs_postgres
def test_a_connection_dropped_before_teardown_does_not_turn_the_answer_into_a_500(app):
    """The database ends the connection (restart, failover) after the view has answered:
    the cleanup discards the connection and the answer still goes out; the next request
    gets a fresh connection."""
    from sqlalchemy import text

    from authserver.extensions import db

    def view():
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(url, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [pid])
        return "answered"

    app.add_url_rule("/test-dropped-connection", "dropped", view)
    client = app.test_client()
    resp = client.get("/test-dropped-connection")
    assert resp.status_code == 200 and resp.get_data(as_text=True) == "answered"
    assert client.get("/readyz").status_code == 200
