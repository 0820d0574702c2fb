"""Sign-in capacity, and a flood of failed sign-ins that must not take the token endpoint down
(issue 16).

    .venv/bin/python bench/signin_flood.py [--db sqlite|postgres|both] [--duration 8]
                                           [--redis redis://127.0.0.1:6379/3]

For each database: a fresh Authserver under `gunicorn -c deploy/gunicorn.conf.py wsgi:app`
(the recommended serving configuration) behind a pretend proxy (AUTHSERVER_PROXY_FIX_X_FOR=1,
so each request's address is its X-Forwarded-For), every other setting at its default, and
the floor (bench/floor_app.py) under the same gunicorn file. In order:

1. floor: POST to the floor, 16 connections (one RS256 signature per request);
2. tokens, idle: client_credentials at 8 connections;
3. sign-in capacity: 16 connections each doing GET /login + POST /login with the right
   password, from a random address each time; sign-ins/s and server CPU per sign-in;
4. the flood: 16 connections of POST /login with made-up names from random addresses
   (CSRF token included), while client_credentials runs at 8 connections, and a real user
   signs in from a fresh address every 1.5 s (retrying after Retry-After when busy).

Results go to bench/results/signin-flood-*.json and .md. See bench/README.md.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402

PG_DB = "authserver_capacity_bench"
CONF = h.ROOT / "deploy" / "gunicorn.conf.py"
RESULTS = h.BENCH_DIR / "results"


def random_ip() -> str:
    return ".".join(str(n) for n in (random.randint(1, 223), random.randint(0, 255),
                                      random.randint(0, 255), random.randint(1, 254)))


class ConfServer(h.Server):
    """`gunicorn -c deploy/gunicorn.conf.py APP`, bound to a free port through GUNICORN_BIND."""

    def __init__(self, name: str, app: str, chdir: Path, env: dict, logfile: Path):
        self.name, self.port = name, h.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.logfile = logfile
        env = dict(env, GUNICORN_BIND=f"127.0.0.1:{self.port}")
        cmd = [str(h.VENV_BIN / "gunicorn"), "-c", str(CONF), "--chdir", str(chdir),
               "--log-level", "warning", "--error-logfile", str(logfile), app]
        self._log = open(logfile, "ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=self._log,
                                     start_new_session=True)


class Stack:
    def __init__(self, db: str, workdir: Path, redis: str | None):
        self.db, self.workdir = db, workdir
        url = h.pg_recreate(PG_DB) if db == "postgres" else \
            f"sqlite:///{workdir / 'authserver.db'}"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AUTHSERVER_", "MAIL_", "GUNICORN_")) and k != "DATABASE_URL"}
        env.update({"AUTHSERVER_INSTANCE_PATH": str(workdir / "instance"),
                    "AUTHSERVER_KEYS_DIR": str(workdir / "keys"),
                    "AUTHSERVER_SECRET_KEY": secrets.token_urlsafe(32),
                    "AUTHSERVER_PROXY_FIX_X_FOR": "1", "DATABASE_URL": url})
        if redis:
            env["AUTHSERVER_RATELIMIT_STORAGE_URI"] = redis
            env["AUTHSERVER_RATELIMIT_KEY_PREFIX"] = "bench-" + secrets.token_hex(4)
        self.env = env

    def start(self) -> None:
        h.cli(["init"], self.env)
        h.cli(["users", "create", "benchuser", "--email", "benchuser@example.com",
               "--password", h.PASSWORD], self.env)
        self.cc = h.last_json_line(h.cli(["clients", "create", "bench-m2m", "--grant-type",
                                          "client_credentials", "--json"], self.env))
        self.floor = ConfServer("floor", "floor_app:app", h.BENCH_DIR, dict(os.environ),
                                self.workdir / "floor.log")
        self.app = ConfServer("authserver", "wsgi:app", h.ROOT, self.env,
                              self.workdir / "authserver.log")
        self.floor.wait_ready()
        self.app.wait_ready()
        self.base = self.app.base
        pg = h.PgBackends(PG_DB) if self.db == "postgres" else None
        self.pg = pg
        self.cpu = h.CpuMeter(lambda: self.app.pids() + (pg() if pg else []))

    def stop(self) -> None:
        for server in (getattr(self, "app", None), getattr(self, "floor", None)):
            if server is not None:
                server.stop()
        if self.pg is not None:
            self.pg.close()
        if self.db == "postgres":
            h.pg_drop(PG_DB)


# --------------------------------------------------------------------------- scenarios

def client_credentials(stack: Stack) -> h.WrkScenario:
    return h.WrkScenario("POST", "/token", {**h.FORM, "Authorization": h.basic(
        stack.cc["client_id"], stack.cc["client_secret"])}, "grant_type=client_credentials",
        check_lua='return status == 200 and string.find(body, "access_token", 1, true) ~= nil')


def flood(stack: Stack, connections: int) -> h.WrkScenario:
    """POST /login with a new made-up name from a new random address each time."""
    forms = []
    for _ in range(connections):
        _, hdrs, body = h.request("GET", stack.base + "/login")
        forms.append(f"{h.cookie_from(hdrs)}|{h.csrf_from(body)}")
    return h.WrkScenario(
        "POST", "/login", per_thread=forms,
        init_lua='local sep = string.find(val, "|", 1, true)\n'
                 'cookie, token = string.sub(val, 1, sep - 1), string.sub(val, sep + 1)\n'
                 'math.randomseed(tid * 7919 + os.time())',
        request_lua='seq = seq + 1\n'
                    'local ip = math.random(1, 223) .. "." .. math.random(0, 255) .. "." .. '
                    'math.random(0, 255) .. "." .. math.random(1, 254)\n'
                    'local body = "csrf_token=" .. token .. "&username=ghost-" .. RUN .. "-" '
                    '.. tid .. "-" .. seq .. "&password=wrong-horse-battery"\n'
                    'return wrk.format("POST", "/login", {["Content-Type"] = '
                    '"application/x-www-form-urlencoded", ["Cookie"] = "' + h.SESSION_COOKIE
                    + '=" .. cookie, ["X-Forwarded-For"] = ip}, body)',
        check_lua='return status == 200 and '
                  'string.find(body, "Incorrect user name", 1, true) ~= nil')


def sign_in(conn: http.client.HTTPConnection, base: str, ip: str) -> tuple[int, dict, bytes]:
    """GET /login and POST the right password, from `ip`, like a browser."""
    xff = {"X-Forwarded-For": ip}
    _, hdrs, body = h.request("GET", base + "/login", conn=conn, headers=xff)
    cookie = h.cookie_from(hdrs)
    data = h.form({"csrf_token": h.csrf_from(body), "username": "benchuser",
                   "password": h.PASSWORD})
    return h.request("POST", base + "/login", body=data, conn=conn, headers={
        **h.FORM, **xff, "Cookie": f"{h.SESSION_COOKIE}={cookie}"})


def per_core(cpu_ms_per_sign_in: float) -> float:
    """Sign-ins a second one core of server CPU can do."""
    return round(1000 / cpu_ms_per_sign_in, 1)


def signin_cpu(stack: Stack, duration: float) -> dict:
    """One connection signing in again and again: server CPU per sign-in without contention
    for the hashing slots, so without busy answers; 1000 / that is the sign-ins a second one
    core can do, a figure that holds on a shared machine where req/s does not."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.app.port, timeout=30)
    stop_at, n = time.monotonic() + duration, 0
    stack.cpu.start()
    while time.monotonic() < stop_at:
        status, _, _ = sign_in(conn, stack.base, random_ip())
        n += status == 303
    cpu_s = stack.cpu.stop()
    conn.close()
    cpu_ms = cpu_s * 1000 / max(n, 1)
    return {"sign_ins": n, "cpu_ms_per_sign_in": round(cpu_ms, 2),
            "sign_ins_per_s_per_core_from_cpu": per_core(cpu_ms) if n else None}


def signin_capacity(stack: Stack, connections: int, duration: float) -> dict:
    port = stack.app.port

    def worker(stop_at: float) -> list:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        out = []
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            status, hdrs, _ = sign_in(conn, stack.base, random_ip())
            out.append((status, time.perf_counter() - t0))
        conn.close()
        return out

    worker(time.monotonic() + 1)  # warm-up
    started = time.monotonic()
    stack.cpu.start()
    samples = h.closed_loop(worker, connections, duration)
    cpu_s = stack.cpu.stop()
    elapsed = time.monotonic() - started
    ok = [s for s in samples if s[0] == 303]
    statuses: dict[str, int] = {}
    for status, _ in samples:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    lat = [s[1] * 1000 for s in ok]
    cpu_ms = cpu_s * 1000 / max(len(ok), 1)
    return {"sign_ins_per_s": round(len(ok) / elapsed, 1),
            # per core of the machine: the 16-thread client and wrk share those cores
            "sign_ins_per_s_per_core": round(len(ok) / elapsed / (os.cpu_count() or 1), 1),
            # per core of server CPU (master, workers, PostgreSQL backends): the capacity
            "sign_ins_per_s_per_server_core": per_core(cpu_ms) if ok else 0,
            "cpu_ms_per_sign_in": round(cpu_ms, 2),
            "cpu_ms_per_attempt": round(cpu_s * 1000 / max(len(samples), 1), 2),
            "p50_ms": round(h.percentile(lat, 50), 1), "p99_ms": round(h.percentile(lat, 99), 1),
            "statuses": statuses}


def real_user(stack: Stack, stop: threading.Event, every: float = 1.5) -> list[dict]:
    """A person signing in from a fresh address every `every` s during the flood; after a busy
    answer they wait Retry-After seconds and press the button again."""
    attempts = []
    while not stop.wait(every):
        conn = http.client.HTTPConnection("127.0.0.1", stack.app.port, timeout=30)
        ip, busy, t0 = random_ip(), 0, time.perf_counter()
        while True:
            status, hdrs, _ = sign_in(conn, stack.base, ip)
            if status != 503 or busy >= 5:
                break
            busy += 1
            time.sleep(float(hdrs.get("retry-after", "1")))
        conn.close()
        attempts.append({"status": status, "busy_answers": busy,
                         "seconds": round(time.perf_counter() - t0, 3)})
    return attempts


def run_flood(stack: Stack, args) -> dict:
    cc, fl = client_credentials(stack), flood(stack, args.flood_connections)
    h.run_wrk("flood_warmup", stack.base, fl, 1, args.flood_connections, stack.workdir)
    out: dict = {}
    stop = threading.Event()

    def run(name, scen, conns):
        out[name] = h.run_wrk(name, stack.base, scen, args.duration, conns, stack.workdir)[0]

    threads = [threading.Thread(target=run, args=("flood", fl, args.flood_connections)),
               threading.Thread(target=run, args=("tokens", cc, args.token_connections))]
    user: list = []
    person = threading.Thread(target=lambda: user.extend(real_user(stack, stop)))
    stack.cpu.start()
    for t in threads:
        t.start()
    person.start()
    for t in threads:
        t.join(args.duration + 90)
    stop.set()
    person.join(60)
    cpu_s = stack.cpu.stop()
    flood_r, tokens_r = out["flood"], out["tokens"]
    return {"tokens": tokens_r.as_dict(), "flood": flood_r.as_dict(),
            "server_cpu_s": round(cpu_s, 2), "real_user": user}


def run_db(db: str, args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"authserver-flood-{db}-"))
    h.log(f"{db}: setting up in {workdir}")
    stack = Stack(db, workdir, args.redis)
    try:
        stack.start()
        floor_scen = h.WrkScenario("POST", "/token", h.FORM, "grant_type=client_credentials")
        h.run_wrk("floor_warmup", stack.floor.base, floor_scen, 1, 16, workdir)
        floor_cpu = h.CpuMeter(stack.floor.pids)
        h.log("  floor")
        floor = h.run_wrk("floor", stack.floor.base, floor_scen, args.duration, 16, workdir,
                          cpu=floor_cpu)[0]
        cc = client_credentials(stack)
        h.run_wrk("tokens_warmup", stack.base, cc, 1, args.token_connections, workdir)
        h.log("  tokens, idle")
        idle = h.run_wrk("tokens_idle", stack.base, cc, args.duration, args.token_connections,
                         workdir, cpu=stack.cpu)[0]
        h.log("  sign-in CPU, one connection")
        one = signin_cpu(stack, args.duration)
        h.log("  sign-in capacity")
        capacity = signin_capacity(stack, 16, args.duration)
        h.log("  flood + tokens + a real user")
        flooded = run_flood(stack, args)
    finally:
        stack.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    tokens = flooded["tokens"]
    user = flooded["real_user"]
    return {
        "db": db, "floor": floor.as_dict(), "tokens_idle": idle.as_dict(),
        "signin_cpu_one_connection": one, "signin_capacity": capacity, **flooded,
        "verdicts": {
            "tokens_keep_half_idle_rate": tokens["rps"] >= idle.rps / 2,
            "tokens_p99_under_100ms": tokens["p99_ms"] < 100,
            "signins_per_core_at_least_40": capacity["sign_ins_per_s_per_server_core"] >= 40,
            "real_user_in_after_at_most_one_busy": bool(user) and all(
                a["status"] == 303 and a["busy_answers"] <= 1 for a in user)},
    }


def markdown(report: dict) -> str:
    lines = [f"# Sign-in flood {report['started']}", "",
             f"{report['machine']['cpus']} CPUs, load average at the end "
             f"{report['machine']['loadavg_at_end'][0]:.1f}; {report['settings']}", "",
             "| db | floor req/s | tokens idle req/s (p99 ms) | tokens in flood req/s (p99 ms) "
             "| flood answers/s (busy, total) | sign-ins/s at 16 conn. | per machine core "
             "| per server core | CPU ms/sign-in "
             "| floor CPU ms/req | 1 conn.: CPU ms/sign-in (sign-ins/s/core) "
             "| real user: busy answers | verdicts |",
             "|" + "---|" * 13]
    for r in report["runs"]:
        cap, user = r["signin_capacity"], r["real_user"]
        lines.append(
            f"| {r['db']} | {r['floor']['rps']:.0f} | {r['tokens_idle']['rps']:.0f} "
            f"({r['tokens_idle']['p99_ms']:.1f}) | {r['tokens']['rps']:.0f} "
            f"({r['tokens']['p99_ms']:.1f}) | {r['flood']['rps']:.0f} ({r['flood']['bad']}) "
            f"| {cap['sign_ins_per_s']} | {cap['sign_ins_per_s_per_core']} "
            f"| {cap['sign_ins_per_s_per_server_core']} "
            f"| {cap['cpu_ms_per_sign_in']} | {r['floor'].get('cpu_ms_per_req')} "
            f"| {r['signin_cpu_one_connection']['cpu_ms_per_sign_in']} "
            f"({r['signin_cpu_one_connection']['sign_ins_per_s_per_core_from_cpu']}) "
            f"| {[a['busy_answers'] for a in user]} {sorted({a['status'] for a in user})} "
            f"| {', '.join(k for k, v in r['verdicts'].items() if not v) or 'all met'} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--duration", type=float, default=8, help="seconds per phase")
    parser.add_argument("--flood-connections", type=int, default=16)
    parser.add_argument("--token-connections", type=int, default=8)
    parser.add_argument("--redis", help="RATELIMIT_STORAGE_URI (default memory://)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folders (logs)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    h.ensure_wrk()
    started = datetime.now()
    runs = [run_db(db, args) for db in (("sqlite", "postgres") if args.db == "both"
                                        else (args.db,))]
    report = {"started": started.isoformat(timespec="seconds"),
              "machine": {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg()},
              "settings": {"duration_s": args.duration, "flood_connections":
                           args.flood_connections, "token_connections": args.token_connections,
                           "rate_limit_storage": args.redis or "memory://",
                           "gunicorn": "-c deploy/gunicorn.conf.py"},
              "runs": runs}
    RESULTS.mkdir(exist_ok=True)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    for name in (f"signin-flood-{stamp}", "signin-flood-latest"):
        (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
        (RESULTS / f"{name}.md").write_text(markdown(report))
    print(markdown(report))
    print(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
