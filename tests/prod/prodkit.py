"""Helpers for the production-scale tests: real gunicorn processes, the `authserver` CLI,
throwaway PostgreSQL databases and a browser-like sign-in over HTTP.

Imported as `prodkit` by the modules next to it (like tests/support.py for the rest of the
suite); the fixtures built from these helpers are in tests/prod/conftest.py.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import psycopg
import pytest
import requests
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
PG_HOW = ("PostgreSQL-only: run with DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432"
          "/test ./scripts/test (the test creates and drops its own database on that server)")
PASSWORD = "Sturdy-Lantern-Orbit-42"
REDIRECT_URI = "http://127.0.0.1:9999/callback"
# Kept apart from db 0 (AUTHSERVER_TEST_REDIS_DB picks another); keys also carry a per-run
# prefix, deleted afterwards.
REDIS_DB = int(os.environ.get("AUTHSERVER_TEST_REDIS_DB", "11"))
# Fast password hashing: these tests are about processes and databases, not argon2 cost.
FAST_HASH = {"AUTHSERVER_PASSWORD_HASH_TIME_COST": "1",
             "AUTHSERVER_PASSWORD_HASH_MEMORY_COST": "8192",
             "AUTHSERVER_PASSWORD_HASH_PARALLELISM": "1"}


def pg_server_url() -> str | None:
    """The PostgreSQL server named by DATABASE_URL, or None when the suite runs on SQLite."""
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith("postgresql") else None


needs_postgres = pytest.mark.skipif(pg_server_url() is None, reason=PG_HOW)
postgres_only = [pytest.mark.postgres, pytest.mark.slow, needs_postgres]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def libpq(url: str, database: str | None = None) -> str:
    """A SQLAlchemy URL as a libpq conninfo for psycopg, optionally for another database."""
    u = make_url(url).set(drivername="postgresql")
    if database:
        u = u.set(database=database)
    return u.render_as_string(hide_password=False)


@contextmanager
def scratch_database(server_url: str, prefix: str = "authserver_mp"):
    """Create a uniquely named database on the server; drop it (connections and all) after."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = libpq(server_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def base_env(**settings: str) -> dict:
    """A clean environment for servers and CLI runs: nothing from the developer's AUTHSERVER_*."""
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "PYTHONPATH")}
    env.update(FAST_HASH)
    env.update(settings)
    return env


def cli(env: dict, *args: str, timeout: float = 60) -> subprocess.Popen:
    """Start `authserver ARGS` from the checkout; finish it with done()."""
    return subprocess.Popen([str(BIN / "authserver"), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def done(proc: subprocess.Popen, timeout: float = 60) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"{proc.args}: exit {proc.returncode}\n{out}\n{err}"
    return out


class Gunicorn:
    """`gunicorn wsgi:app` from the checkout on 127.0.0.1:port; stdout and stderr to files."""

    def __init__(self, name: str, env: dict, port: int, log_dir: Path, *, workers: int = 1,
                 threads: int = 1, extra: tuple[str, ...] = ()):
        self.name, self.env, self.port = name, env, port
        self.url = f"http://127.0.0.1:{port}"
        self.out_path, self.err_path = log_dir / f"{name}.out", log_dir / f"{name}.err"
        self.args = [str(BIN / "gunicorn"), "-b", f"127.0.0.1:{port}", "-w", str(workers),
                     "--threads", str(threads), "--no-control-socket", "--timeout", "30",
                     "--graceful-timeout", "5", *extra, "wsgi:app"]
        self.proc: subprocess.Popen | None = None

    def start(self) -> Gunicorn:
        with open(self.out_path, "ab") as out, open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(self.args, cwd=REPO, env=self.env, stdout=out,
                                         stderr=err, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 30) -> Gunicorn:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.stderr()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not ready after {timeout} s:\n{self.stderr()}")

    def stop(self) -> None:
        """SIGINT (gunicorn's quick shutdown) to our master; SIGKILL its group if stuck."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace") if self.err_path.exists() else ""

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""


# --- a deployment: one database, one keys dir, one secret, one issuer, N servers ---------------

@dataclass
class Deployment:
    env: dict
    db_url: str
    root: Path
    servers: list[Gunicorn] = field(default_factory=list)
    client_id: str = ""
    client_secret: str = ""
    cc_client_id: str = ""
    cc_client_secret: str = ""

    @property
    def mail_dir(self) -> Path:
        return self.root / "instance" / "mail"

    def sql(self, query: str, *params):
        """Run one query on the deployment's database; returns all rows (or [] for no result)."""
        with psycopg.connect(libpq(self.db_url), autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []


def deployment_env(db_url: str, root: Path, issuer: str, **extra: str) -> dict:
    return base_env(DATABASE_URL=db_url, AUTHSERVER_ISSUER=issuer,
                    AUTHSERVER_SECRET_KEY="prod-test-" + secrets.token_hex(16),
                    AUTHSERVER_KEYS_DIR=str(root / "keys"),
                    AUTHSERVER_INSTANCE_PATH=str(root / "instance"), **extra)


def seed(dep: Deployment, *, users=("alice",), servers: list[Gunicorn] = ()) -> None:
    """`authserver init`, then users and clients (and servers) in parallel, like an operator."""
    done(cli(dep.env, "init"))
    for server in servers:
        server.start()
    procs = [cli(dep.env, "users", "create", u, "--email", f"{u}@example.com",
                 "--password", PASSWORD) for u in users]
    code_client = cli(dep.env, "clients", "create", "App", "--redirect-uri", REDIRECT_URI, "--json")
    cc_client = cli(dep.env, "clients", "create", "Service", "--grant-type", "client_credentials",
                    "--scope", "profile", "--json")
    for proc in procs:
        done(proc)
    info = _last_json_line(done(code_client))
    dep.client_id, dep.client_secret = info["client_id"], info["client_secret"]
    info = _last_json_line(done(cc_client))
    dep.cc_client_id, dep.cc_client_secret = info["client_id"], info["client_secret"]
    for server in servers:
        server.wait_ready()
    dep.servers.extend(servers)


def _last_json_line(out: str) -> dict:
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


# --- a browser and a relying app, over HTTP ----------------------------------------------------

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no csrf_token"
    return match.group(1)


def browser(ip: str | None = None) -> requests.Session:
    """A cookie-keeping client; `ip` is the client address a trusted proxy would report."""
    session = requests.Session()
    session.headers["X-Forwarded-For"] = ip or ".".join(
        str(n) for n in (10, secrets.randbelow(250), secrets.randbelow(250),
                         secrets.randbelow(250) + 1))
    return session


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


def query_of(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def get_code(web: requests.Session, base: str, client_id: str, *, username: str = "alice",
             password: str = PASSWORD) -> tuple[str, str, str]:
    """Authorize at `base`, signing in at the login page; returns (code, verifier, nonce)."""
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(8), secrets.token_urlsafe(8)
    url = base + "/authorize?" + urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
        "scope": "openid profile email offline_access", "state": state, "nonce": nonce,
        "code_challenge": challenge, "code_challenge_method": "S256"})
    login = (username, password)
    for _ in range(8):
        resp = web.get(url, allow_redirects=False, timeout=10)
        if resp.status_code in (302, 303):
            location = urljoin(url, resp.headers["Location"])
            if location.startswith(REDIRECT_URI):
                q = query_of(location)
                assert q.get("state") == state and "code" in q, location
                return q["code"], verifier, nonce
            url = location
            continue
        if 'name="password"' in resp.text and login:
            resp = web.post(url.split("?")[0], data={"username": login[0], "password": login[1],
                                                     "csrf_token": csrf_from(resp.text)},
                            allow_redirects=False, timeout=10)
            assert resp.status_code == 303, resp.text[:500]
            url, login = urljoin(url, resp.headers["Location"]), None
            continue
        raise AssertionError(f"unexpected page {resp.status_code} at {url}: {resp.text[:300]}")
    raise AssertionError("too many redirects")


def exchange(base: str, dep: Deployment, code: str, verifier: str,
             timeout: float = 10) -> requests.Response:
    return requests.post(base + "/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier}, auth=(dep.client_id, dep.client_secret), timeout=timeout)


def refresh(base: str, dep: Deployment, refresh_token: str,
            timeout: float = 10) -> requests.Response:
    return requests.post(base + "/token", data={"grant_type": "refresh_token",
                                                "refresh_token": refresh_token},
                         auth=(dep.client_id, dep.client_secret), timeout=timeout)


def client_credentials(base: str, dep: Deployment, timeout: float = 10) -> requests.Response:
    return requests.post(base + "/token", data={"grant_type": "client_credentials"},
                         auth=(dep.cc_client_id, dep.cc_client_secret), timeout=timeout)


def mail_files(mail_dir: Path) -> set[str]:
    return {p.name for p in mail_dir.glob("*.eml")} if mail_dir.exists() else set()


def wait_for_mail(mail_dir: Path, kind: str, to: str, skip: set[str] = frozenset(),
                  timeout: float = 15) -> str:
    """The text of the first .eml of `kind` to `to` not in `skip` (polls, bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in sorted(mail_files(mail_dir) - set(skip)):
            if not name.endswith(f"-{kind}.eml"):
                continue
            msg = message_from_bytes((mail_dir / name).read_bytes())
            if msg["To"] == to:
                return _plain_text(msg)
        time.sleep(0.1)
    raise AssertionError(f"no {kind} mail to {to} in {mail_dir} within {timeout} s")


def _plain_text(msg) -> str:
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode()
    raise AssertionError("mail without a text part")


def code_in(text: str) -> str:
    codes = re.findall(r"^\s*(\d{6})\s*$", text, re.M)
    assert codes, text
    return codes[0]


def request_id() -> str:
    return "prodtest-" + uuid.uuid4().hex[:16]


def stop_all(servers) -> None:
    """Stop servers in parallel: signal every master first, then wait for each."""
    for server in servers:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.send_signal(signal.SIGINT)
    for server in servers:
        server.stop()
