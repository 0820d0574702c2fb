"""Shared machinery for the benchmarks: servers under gunicorn, wrk, PostgreSQL, HTTP helpers.

Everything here talks only to 127.0.0.1, starts its own processes and stops exactly those,
by PID. Nothing in bench/ is a test: pytest never collects it (no test_ prefix, outside tests/).
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(ROOT / "tests"))

# The port, PKCE and CSRF helpers are the tests' own (tests/support.py).
from support import csrf_from as _csrf_from  # noqa: E402
from support import free_port, pkce_pair  # noqa: E402,F401

VENV_BIN = Path(sys.executable).parent
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_APP_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
PASSWORD = "bench-Quill-Harbor-42"
REDIRECT_URI = "http://127.0.0.1:9/cb"
SESSION_COOKIE = "authserver_session"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes

GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"


@dataclass
class GunicornSettings:
    """Explicit -w/-k/--threads, or (conf set) the recommended `-c deploy/gunicorn.conf.py`,
    whose workers and threads GUNICORN_WORKERS and GUNICORN_THREADS may override."""
    workers: int = 1
    worker_class: str = "gthread"
    threads: int = 4
    conf: Path | None = None

    def args(self) -> list[str]:
        if self.conf is not None:
            return ["-c", str(self.conf)]
        args = ["-w", str(self.workers), "-k", self.worker_class]
        if self.worker_class == "gthread":
            args += ["--threads", str(self.threads)]
        return args

    def describe(self) -> str:
        if self.conf is not None:
            return (f"gunicorn -c deploy/gunicorn.conf.py (GUNICORN_WORKERS="
                    f"{os.environ.get('GUNICORN_WORKERS', 'cores')}, GUNICORN_THREADS="
                    f"{os.environ.get('GUNICORN_THREADS', 'default')})")
        return f"gunicorn {self.worker_class} {self.workers} workers × {self.threads} threads"


class Server:
    """One gunicorn master we started; stop() signals only its PID (and waits)."""

    def __init__(self, name: str, app: str, chdir: Path, port: int, settings: GunicornSettings,
                 env: dict, logfile: Path):
        self.name, self.port = name, port
        self.base = f"http://127.0.0.1:{port}"
        self.logfile = logfile
        cmd = [str(VENV_BIN / "gunicorn"), *settings.args(), "-b", f"127.0.0.1:{port}",
               "--chdir", str(chdir), "--log-level", "warning", "--graceful-timeout", "5",
               "--timeout", "60", "--error-logfile", str(logfile), app]
        self._log = open(logfile, "ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=self._log,
                                     start_new_session=True)

    def wait_ready(self, path: str = "/healthz", timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; see {self.logfile}:\n"
                                   + self.logfile.read_text()[-3000:])
            try:
                status, _, _ = request("GET", self.base + path, timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout}s; see {self.logfile}")

    def pids(self) -> list[int]:
        return [self.proc.pid, *self.worker_pids()]

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
                             capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the master stops its own workers
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_snapshot(pids) -> dict[int, float]:
    """CPU seconds (user + system, all threads) used so far by each process."""
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


class CpuMeter:
    """CPU seconds spent by a changing set of processes (a server's master and workers, and
    the PostgreSQL backends serving it) between start() and stop(). Unlike requests/s, CPU per
    request barely moves when other work shares the machine."""

    def __init__(self, pids_fn):
        self.pids_fn = pids_fn
        self.before: dict[int, float] = {}

    def start(self) -> None:
        self.before = cpu_snapshot(self.pids_fn())

    def stop(self) -> float:
        after = cpu_snapshot(self.pids_fn())
        return sum(v - self.before.get(pid, 0.0) for pid, v in after.items())


class PgBackends:
    """The PIDs of the PostgreSQL backends serving one database, over one kept connection
    (a shared server may be near max_connections; then this counts no backend and says so)."""

    def __init__(self, dbname: str):
        self.dbname, self.conn, self.failed = dbname, None, False

    def __call__(self) -> list[int]:
        import psycopg
        try:
            if self.conn is None or self.conn.closed:
                self.conn = psycopg.connect(PG_ADMIN_URL, autocommit=True)
            return [r[0] for r in self.conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.dbname,))]
        except psycopg.Error:
            self.failed = True
            return []

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def cli(args: list[str], env: dict, timeout: float = 120) -> str:
    """Run `authserver ...` with the benchmark's environment; return stdout."""
    res = subprocess.run([str(VENV_BIN / "authserver"), *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"authserver {' '.join(args[:2])} failed:\n{res.stdout}\n{res.stderr}")
    return res.stdout


def last_json_line(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no JSON object in output: {text!r}")


# --------------------------------------------------------------------------- PostgreSQL

def pg_recreate(name: str) -> str:
    """Drop and create database `name`; return its SQLAlchemy URL."""
    pg_drop(name)
    import psycopg
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_APP_URL.format(name=name)


def pg_drop(name: str) -> None:
    import psycopg
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


# --------------------------------------------------------------------------- wrk

def ensure_wrk() -> str:
    """The path of wrk, installing Debian's package when it is missing (root only)."""
    path = shutil.which("wrk")
    if path:
        return path
    log("wrk is missing: installing Debian's wrk package")
    if os.geteuid() != 0:
        raise RuntimeError("wrk is not installed; run `apt-get install -y wrk` as root")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(["apt-get", "install", "-y", "wrk"], env=env,
                      capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], env=env, capture_output=True,
                       check=True)
    path = shutil.which("wrk")
    if not path:
        raise RuntimeError("could not install wrk")
    return path


def lua_str(value: str) -> str:
    value = str(value)
    if not value.isascii():
        raise ValueError("wrk scripts take ASCII values only")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


LUA_COMMON = r"""
local threads = {}
local nsetup = 0
function setup(thread)
  nsetup = nsetup + 1
  thread:set("tid", nsetup)
  if #PER_THREAD > 0 then thread:set("val", PER_THREAD[((nsetup - 1) % #PER_THREAD) + 1]) end
  table.insert(threads, thread)
end

ok, bad, last_bad, seq = 0, 0, "", 0

local function location(headers)
  return headers["Location"] or headers["location"] or ""
end

function response(status, headers, body)
  if check(status, headers, body) then
    ok = ok + 1
  else
    bad = bad + 1
    last_bad = status .. " " .. location(headers) .. " " .. string.sub(body or "", 1, 300)
  end
end

function done(summary, latency, requests)
  local tok, tbad, lb, vals = 0, 0, "", {}
  for _, t in ipairs(threads) do
    tok = tok + t:get("ok")
    tbad = tbad + t:get("bad")
    local l = t:get("last_bad")
    if l ~= "" then lb = l end
    local v = t:get("val")
    if v then table.insert(vals, '"' .. v .. '"') end
  end
  local e = summary.errors
  io.write(string.format('BENCHJSON {"requests":%d,"duration_us":%d,"ok":%d,"bad":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,"vals":[%s]}\n',
    summary.requests, summary.duration, tok, tbad, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, table.concat(vals, ",")))
  io.write("BENCHLASTBAD " .. lb .. "\n")
end
"""


@dataclass
class WrkScenario:
    """What wrk sends. `per_thread` values reach each connection as the global `val`.

    `request_lua` (optional) is the body of a request() function, for requests that change
    (it may read and set `val` and `seq`, and read `tid` and `RUN`, a token new on every
    run); `check_lua` is the body of check(status, headers,
    body) and may update `val` (a refresh-token chain does).
    """
    method: str
    path: str
    headers: dict = field(default_factory=dict)
    body: str | None = None
    per_thread: list[str] = field(default_factory=list)
    init_lua: str = ""
    request_lua: str = ""
    check_lua: str = "return status == 200"

    def script(self) -> str:
        lines = [f"PER_THREAD = {{{', '.join(lua_str(v) for v in self.per_thread)}}}",
                 f"RUN = {lua_str(secrets.token_hex(4))}  -- differs on every run",
                 f"wrk.method = {lua_str(self.method)}", f"wrk.path = {lua_str(self.path)}"]
        for name, value in self.headers.items():
            lines.append(f"wrk.headers[{lua_str(name)}] = {lua_str(value)}")
        if self.body is not None:
            lines.append(f"wrk.body = {lua_str(self.body)}")
        lines.append("function init(args)\n" + (self.init_lua or "") + "\nend")
        if self.request_lua:
            lines.append("function request()\n" + self.request_lua + "\nend")
        lines.append("function check(status, headers, body)\n" + self.check_lua + "\nend")
        return "\n".join(lines) + LUA_COMMON


@dataclass
class Result:
    scenario: str
    rps: float
    p50_ms: float
    p99_ms: float
    ok: int
    bad: int
    requests: int
    extra: dict = field(default_factory=dict)
    last_bad: str = ""

    def as_dict(self) -> dict:
        return {"scenario": self.scenario, "rps": round(self.rps, 1),
                "p50_ms": round(self.p50_ms, 2), "p99_ms": round(self.p99_ms, 2),
                "ok": self.ok, "bad": self.bad, "requests": self.requests, **self.extra,
                **({"last_bad": self.last_bad} if self.last_bad else {})}


def run_wrk(name: str, base: str, scen: WrkScenario, duration: float, connections: int,
            workdir: Path, cpu: CpuMeter | None = None) -> tuple[Result, list[str]]:
    """One wrk run with one thread per connection (so a per-connection chain stays ordered).

    Returns the result and each connection's final `val` (e.g. its latest refresh token).
    """
    if cpu:
        cpu.start()
    script = workdir / f"{re.sub(r'[^a-z0-9]+', '_', name.lower())}.lua"
    script.write_text(scen.script())
    cmd = [ensure_wrk(), f"-t{connections}", f"-c{connections}", f"-d{max(1, round(duration))}s",
           "--timeout", "10s", "-s", str(script), base + scen.path]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    data, last_bad = None, ""
    for line in res.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            data = json.loads(line[len("BENCHJSON "):])
        elif line.startswith("BENCHLASTBAD "):
            last_bad = line[len("BENCHLASTBAD "):].strip()
    cpu_s = cpu.stop() if cpu else None
    if data is None:
        raise RuntimeError(f"wrk gave no result for {name}:\n{res.stdout}\n{res.stderr}")
    if cpu_s is not None and data["requests"]:
        errors_cpu = {"cpu_ms_per_req": round(cpu_s * 1000 / data["requests"], 3)}
    else:
        errors_cpu = {}
    seconds = data["duration_us"] / 1e6
    errors = {k: data[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
              if data[k]}
    result = Result(name, data["ok"] / seconds, data["p50_us"] / 1000, data["p99_us"] / 1000,
                    data["ok"], data["bad"] + sum(errors.values()), data["requests"],
                    extra={**errors, **errors_cpu}, last_bad=last_bad)
    return result, data.get("vals", [])


# --------------------------------------------------------------------------- plain HTTP

def request(method: str, url: str, *, body: bytes | str | None = None, headers: dict | None = None,
            timeout: float = 30, conn: http.client.HTTPConnection | None = None
            ) -> tuple[int, dict, bytes]:
    """One HTTP request (own connection unless one is given); headers come back lowercased."""
    parts = urlsplit(url)
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    if isinstance(body, str):
        body = body.encode()
    try:
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            if own:
                raise
            conn.close()  # the server closed an idle keep-alive connection: open a new one
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
        data = resp.read()
        hdrs: dict = {}
        for k, v in resp.getheaders():
            k = k.lower()
            hdrs[k] = hdrs[k] + "\n" + v if k in hdrs and k == "set-cookie" else v
        return resp.status, hdrs, data
    finally:
        if own:
            conn.close()


def cookie_from(headers: dict, name: str = SESSION_COOKIE) -> str | None:
    for line in headers.get("set-cookie", "").split("\n"):
        m = re.match(rf"\s*{re.escape(name)}=([^;]*)", line)
        if m:
            return m.group(1)
    return None


def csrf_from(body: bytes) -> str:
    """tests/support.py's csrf_from, for a page read as bytes."""
    return _csrf_from(body.decode("utf-8", errors="replace"))


def form(data: dict) -> str:
    return urlencode(data)


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def basic(client_id: str, secret: str) -> str:
    from urllib.parse import quote
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def browser_login(base: str, username: str, password: str, query: dict) -> tuple[str, str]:
    """Like a browser: GET /authorize, follow to /login, post the form, follow back.

    Returns (session cookie, the final Location: redirect_uri?code=...).
    """
    status, hdrs, _ = request("GET", f"{base}/authorize?{urlencode(query)}")
    cookie = cookie_from(hdrs)
    if status != 302:
        raise RuntimeError(f"/authorize answered {status}, expected a redirect to /login")
    login_url = hdrs["location"] if hdrs["location"].startswith("http") else base + hdrs["location"]
    status, hdrs, body = request("GET", login_url, headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
    cookie = cookie_from(hdrs) or cookie
    data = form({"csrf_token": csrf_from(body), "username": username, "password": password})
    for _ in range(20):  # "Busy, try again" (503: the hashing slots), as a person would
        status, hdrs, body = request("POST", f"{base}/login", body=data,
                                     headers={**FORM, "Cookie": f"{SESSION_COOKIE}={cookie}"})
        if status != 503:
            break
        time.sleep(min(float(hdrs.get("retry-after", 1)), 2.0))
    if status not in (302, 303):
        raise RuntimeError(f"login answered {status}: {body[:300]!r}")
    cookie = cookie_from(hdrs) or cookie
    location = hdrs["location"]
    for _ in range(3):  # back to /authorize, then to the app with a code
        if location.startswith(REDIRECT_URI):
            return cookie, location
        url = location if location.startswith("http") else base + location
        status, hdrs, body = request("GET", url, headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
        cookie = cookie_from(hdrs) or cookie
        location = hdrs.get("location", "")
    raise RuntimeError(f"no code after login: {status} {location} {body[:300]!r}")


def code_flow(base: str, client_id: str, secret: str, username: str) -> tuple[dict, str]:
    """The authorization code flow with PKCE through HTTP; returns (token response, cookie)."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(8)
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
             "scope": "openid profile email offline_access", "state": state,
             "nonce": secrets.token_urlsafe(8), "code_challenge": challenge,
             "code_challenge_method": "S256"}
    cookie, location = browser_login(base, username, PASSWORD, query)
    params = parse_qs(urlsplit(location).query)
    if params.get("state") != [state] or "code" not in params:
        raise RuntimeError(f"bad redirect after login: {location}")
    status, _, body = request("POST", f"{base}/token", body=form({
        "grant_type": "authorization_code", "code": params["code"][0],
        "redirect_uri": REDIRECT_URI, "code_verifier": verifier}),
        headers={**FORM, "Authorization": basic(client_id, secret)})
    if status != 200:
        raise RuntimeError(f"code exchange answered {status}: {body[:300]!r}")
    return json.loads(body), cookie


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(pct / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def closed_loop(worker, connections: int, duration: float) -> list:
    """Run worker(stop_at) on `connections` threads; each returns a list of samples."""
    stop_at = time.monotonic() + duration
    out: list = []
    lock = threading.Lock()

    def run():
        samples = worker(stop_at)
        with lock:
            out.extend(samples)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + 120)
    return out
