"""Authserver under load, against a floor measured in the same run.

    .venv/bin/python bench/run.py [--db sqlite|postgres|both] [--workers 1,2] [--duration 10]

For each database and worker count it starts a fresh Authserver under gunicorn on 127.0.0.1
(temp instance folder, keys and SQLite file, or a fresh `authserver_bench` PostgreSQL
database dropped at the end), seeds it through the CLI, and measures at 16 concurrent
connections: discovery, JWKS, the token endpoint (client_credentials; refresh_token with
rotation, one chain per connection), userinfo, /authorize?prompt=none and /refresh with a
live session (in alternating rounds, see run_pair), a full login (GET /login + POST), and
POST /forgot-password at a fixed rate with an SMTP server that takes 1 s per message. The
floor, bench/floor_app.py (one RS256
JWT per request) on the same gunicorn settings, is measured before and after; every figure
is also printed as a ratio of it. Results go to bench/results/ (gitignored) as JSON and
Markdown. See bench/README.md.
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402
import seed  # noqa: E402

PG_DB = "authserver_bench"
RESULTS = h.BENCH_DIR / "results"
SCENARIOS = ("discovery", "jwks", "client_credentials", "refresh_token", "userinfo",
             "authorize_prompt_none", "refresh_redirect", "login", "forgot_password")
TARGETS = {
    "client_credentials": "≥0.70× floor, p99<30ms",
    "refresh_token": "≥0.45× floor, p99<30ms",
    "refresh_redirect": "≥ prompt=none req/s",
    "forgot_password": "p99<50ms at the fixed rate",
    "discovery": "from memory",
    "jwks": "from memory",
}


# --------------------------------------------------------------------------- slow SMTP

class SlowSmtpHandler:
    """Accepts every message after `delay` seconds, like an overloaded mail relay."""

    def __init__(self, delay: float):
        self.delay, self.received = delay, 0

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        self.received += 1
        return "250 Message accepted"


def start_smtp(delay: float):
    from aiosmtpd.controller import Controller
    handler = SlowSmtpHandler(delay)
    controller = Controller(handler, hostname="127.0.0.1", port=h.free_port())
    controller.start()
    return controller, handler


# --------------------------------------------------------------------------- one server

class Stack:
    """A fresh Authserver (plus the floor app) for one database and one gunicorn setting."""

    def __init__(self, db: str, settings: h.GunicornSettings, smtp_port: int, workdir: Path,
                 access_alg: str = "RS256"):
        self.db, self.settings, self.workdir = db, settings, workdir
        self.port = h.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        url = h.pg_recreate(PG_DB) if db == "postgres" else \
            f"sqlite:///{workdir / 'authserver.db'}"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AUTHSERVER_", "MAIL_")) and k != "DATABASE_URL"}
        env.update({
            "AUTHSERVER_INSTANCE_PATH": str(workdir / "instance"),
            "AUTHSERVER_KEYS_DIR": str(workdir / "keys"),
            "AUTHSERVER_ISSUER": self.base,
            "AUTHSERVER_SECRET_KEY": secrets.token_urlsafe(32),
            "AUTHSERVER_RATELIMIT_ENABLED": "false",
            # 16 robot browsers each make hundreds of round trips a second; the guard's
            # bookkeeping still runs on every request, only its threshold is out of reach.
            "AUTHSERVER_LOOP_MAX_TRIPS": "1000000", "AUTHSERVER_LOOP_REDEEMED_MAX_TRIPS": "1000000",
            "AUTHSERVER_ACCESS_TOKEN_ALG": access_alg,
            "DATABASE_URL": url,
        })
        self.cli_env = env
        self.server_env = dict(env, MAIL_SERVER="127.0.0.1", MAIL_PORT=str(smtp_port))
        self.url = url
        self.app: h.Server | None = None
        self.floor: h.Server | None = None

    def seed(self, forgot_users: int) -> None:
        env = self.cli_env
        h.cli(["init"], env)
        h.cli(["users", "create", "benchuser", "--email", "benchuser@example.com", "--name",
               "Bench User", "--password", h.PASSWORD], env)
        self.cc = h.last_json_line(h.cli(["clients", "create", "bench-m2m", "--grant-type",
                                          "client_credentials", "--json"], env))
        self.rp = h.last_json_line(h.cli(["clients", "create", "bench-app", "--redirect-uri",
                                          h.REDIRECT_URI, "--json"], env))
        seed.insert_users(self.url, forgot_users, prefix="fp")
        self.forgot_names = seed.usernames(forgot_users, prefix="fp")

    def start(self) -> None:
        self.floor = h.Server("floor", "floor_app:app", h.BENCH_DIR, h.free_port(), self.settings,
                              dict(os.environ), self.workdir / "floor.log")
        self.app = h.Server("authserver", "wsgi:app", h.ROOT, self.port, self.settings,
                            self.server_env, self.workdir / "authserver.log")
        self.floor.wait_ready()
        self.app.wait_ready()
        self.db_pids = h.PgBackends(PG_DB) if self.db == "postgres" else None
        self.app_cpu = self.cpu_with_database(self.app)
        self.floor_cpu = h.CpuMeter(self.floor.pids)

    def cpu_with_database(self, server: h.Server) -> h.CpuMeter:
        """The CPU of an Authserver `server` and, on PostgreSQL, of the backends serving it."""
        return h.CpuMeter(lambda: server.pids() + (self.db_pids() if self.db_pids else []))

    def stop(self) -> None:
        for server in (self.app, self.floor):
            if server is not None:
                server.stop()
        if getattr(self, "db_pids", None) is not None:
            self.db_pids.close()
        if self.db == "postgres":
            h.pg_drop(PG_DB)


def make_families(stack: Stack, count: int) -> list[tuple[dict, str]]:
    """`count` refresh-token families through the browser code flow (login form and all)."""
    rp = stack.rp
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda _: h.code_flow(stack.base, rp["client_id"],
                                                   rp["client_secret"], "benchuser"),
                             range(count)))


# --------------------------------------------------------------------------- scenarios

def token_scenarios(stack: Stack, families: list[tuple[dict, str]]) -> dict[str, h.WrkScenario]:
    cc, rp = stack.cc, stack.rp
    _, challenge = h.pkce_pair()
    cookies = [cookie for _, cookie in families]
    authz = {"Authorization": h.basic(rp["client_id"], rp["client_secret"])}
    code_check = ('local loc = headers["Location"] or headers["location"] or ""\n'
                  'return status == 302 and string.find(loc, "code=", 1, true) ~= nil')
    common_q = urlencode({"client_id": rp["client_id"], "redirect_uri": h.REDIRECT_URI,
                          "code_challenge": challenge, "code_challenge_method": "S256"})
    authorize_q = urlencode({"response_type": "code", "scope": "openid profile email",
                             "prompt": "none"}) + "&" + common_q
    cookie_init = f'wrk.headers["Cookie"] = "{h.SESSION_COOKIE}=" .. val'
    state_request = ('seq = seq + 1\nreturn wrk.format(nil, wrk.path .. "&state=" .. RUN .. "-" '
                     '.. tid .. "-" .. seq)')
    return {
        "discovery": h.WrkScenario("GET", "/.well-known/openid-configuration"),
        "jwks": h.WrkScenario("GET", "/.well-known/jwks.json"),
        "client_credentials": h.WrkScenario(
            "POST", "/token", {**h.FORM, "Authorization": h.basic(cc["client_id"],
                                                                  cc["client_secret"])},
            "grant_type=client_credentials",
            check_lua='return status == 200 and string.find(body, "access_token", 1, true) ~= nil'),
        "refresh_token": h.WrkScenario(
            "POST", "/token", {**h.FORM, **authz},
            request_lua='return wrk.format(nil, nil, nil, '
                        '"grant_type=refresh_token&refresh_token=" .. val)',
            check_lua='if status ~= 200 then return false end\n'
                      'local t = string.match(body, \'"refresh_token"%s*:%s*"([^"]+)"\')\n'
                      'if t then val = t return true end\nreturn false'),
        "userinfo": h.WrkScenario(
            "GET", "/userinfo", per_thread=[tok["access_token"] for tok, _ in families],
            init_lua='wrk.headers["Authorization"] = "Bearer " .. val',
            check_lua='return status == 200 and string.find(body, "sub", 1, true) ~= nil'),
        "authorize_prompt_none": h.WrkScenario(
            "GET", "/authorize?" + authorize_q, per_thread=cookies, init_lua=cookie_init,
            request_lua=state_request, check_lua=code_check),
        "refresh_redirect": h.WrkScenario(
            "GET", "/refresh?" + common_q, per_thread=cookies, init_lua=cookie_init,
            request_lua=state_request, check_lua=code_check),
    }


def run_floor(stack: Stack, args) -> h.Result:
    scen = h.WrkScenario("POST", "/token", h.FORM, "grant_type=client_credentials",
                         check_lua='return status == 200')
    h.run_wrk("floor_warmup", stack.floor.base, scen, 1, args.connections, stack.workdir)
    result, _ = h.run_wrk("floor", stack.floor.base, scen, args.duration, args.connections,
                          stack.workdir, cpu=stack.floor_cpu)
    return result


# On a shared machine the floor drifts within minutes: it is measured again right before each
# of these, and their ratio uses that paired value.
PAIRED = ("discovery", "jwks", "client_credentials", "refresh_token", "userinfo",
          "authorize_prompt_none", "refresh_redirect")


def run_wrk_scenarios(stack: Stack, args, wanted: list[str]) -> list[h.Result]:
    need = {"refresh_token", "userinfo", *PAIR}
    results = []
    warm_families = make_families(stack, args.connections) if "refresh_token" in wanted else []
    families = make_families(stack, args.connections) if need & set(wanted) else []
    scens = token_scenarios(stack, families)
    for name in wanted:
        if name not in scens:
            continue
        if set(PAIR) <= set(wanted) and name in PAIR:
            if name == PAIR[0]:
                results += run_pair(stack, args, scens)
            continue
        scen = scens[name]
        if name == "refresh_token":
            scen.per_thread = [tok["refresh_token"] for tok, _ in warm_families]
            h.run_wrk(name + "_warmup", stack.base, scen, 1, args.connections, stack.workdir)
            scen.per_thread = [tok["refresh_token"] for tok, _ in families]
        else:
            h.run_wrk(name + "_warmup", stack.base, scen, 1, args.connections, stack.workdir)
        paired = run_floor(stack, args) if name in PAIRED else None
        h.log(f"  {name}")
        result = guarded(name, lambda: h.run_wrk(name, stack.base, scen, args.duration,
                                                 args.connections, stack.workdir,
                                                 cpu=stack.app_cpu)[0])
        if paired:
            _add_floor(result, paired)
        results.append(result)
    return results


# /refresh against /authorize?prompt=none (issue 5): the two are within a few percent of each
# other, and this machine's speed drifts by more than that within a minute. So they run in
# alternating rounds (A B, B A, A B, ...), each round args.duration / 2 seconds, and each side
# is the sum of its rounds: a drift favours neither. Every round's ratio is kept as well.
PAIR = ("authorize_prompt_none", "refresh_redirect")


def run_pair(stack: Stack, args, scens: dict[str, h.WrkScenario]) -> list[h.Result]:
    for name in PAIR:
        h.run_wrk(name + "_warmup", stack.base, scens[name], 1, args.connections, stack.workdir)
    floor = run_floor(stack, args)
    seconds = max(2.0, args.duration / 2)
    rounds: dict[str, list[h.Result]] = {name: [] for name in PAIR}
    for i in range(args.pair_rounds):
        h.log(f"  {' / '.join(PAIR)}: round {i + 1} of {args.pair_rounds}")
        for name in (PAIR if i % 2 == 0 else PAIR[::-1]):
            rounds[name].append(guarded(name, lambda n=name: h.run_wrk(
                n, stack.base, scens[n], seconds, args.connections, stack.workdir,
                cpu=stack.app_cpu)[0]))
    ratios = [round(r.rps / a.rps, 3) if a.rps else None
              for a, r in zip(rounds[PAIR[0]], rounds[PAIR[1]])]
    results = []
    for name in PAIR:
        result = _sum_rounds(name, rounds[name], seconds)
        result.extra["round_ratios_refresh_over_prompt_none"] = ratios
        _add_floor(result, floor)
        results.append(result)
    return results


def _sum_rounds(name: str, parts: list[h.Result], nominal: float) -> h.Result:
    """One result from several runs: requests over seconds (a run with nothing good counts
    its nominal length); the median run's p50 and p99."""
    seconds = sum(p.ok / p.rps if p.rps else nominal for p in parts)
    ok, requests = sum(p.ok for p in parts), sum(p.requests for p in parts)
    cpu_ms = sum(p.extra.get("cpu_ms_per_req", 0) * p.requests for p in parts)
    return h.Result(name, ok / seconds if seconds else 0.0,
                    statistics.median(p.p50_ms for p in parts),
                    statistics.median(p.p99_ms for p in parts),
                    ok, sum(p.bad for p in parts), requests,
                    extra={"cpu_ms_per_req": round(cpu_ms / requests, 3) if requests else None,
                           "round_rps": [round(p.rps, 1) for p in parts]},
                    last_bad=next((p.last_bad for p in reversed(parts) if p.last_bad), ""))


def _add_floor(result: h.Result, floor: h.Result) -> None:
    result.extra["paired_floor_rps"] = round(floor.rps, 1)
    result.extra["paired_floor_p99_ms"] = round(floor.p99_ms, 2)
    result.extra["paired_floor_cpu_ms"] = floor.extra.get("cpu_ms_per_req")


def run_login(stack: Stack, args) -> h.Result:
    """Closed loop: each connection does GET /login (a fresh session and CSRF token) and
    POST /login, like a browser; argon2id verification dominates the POST."""
    base = stack.base

    def worker(stop_at: float) -> list:
        conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
        samples = []
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            status, hdrs, body = h.request("GET", base + "/login", conn=conn)
            t1 = time.perf_counter()
            cookie = h.cookie_from(hdrs)
            data = h.form({"csrf_token": h.csrf_from(body), "username": "benchuser",
                           "password": h.PASSWORD})
            cookie_hdr = {"Cookie": f"{h.SESSION_COOKIE}={cookie}"}
            status, hdrs, body = h.request("POST", base + "/login", body=data, conn=conn,
                                           headers={**h.FORM, **cookie_hdr})
            t2 = time.perf_counter()
            ok = status == 303 and hdrs.get("location", "").endswith("/account")
            samples.append((ok, t1 - t0, t2 - t1, f"{status} {body[:200]!r}"))
        conn.close()
        return samples

    worker(time.monotonic() + 1)  # warm-up: templates, argon2 memory
    started = time.monotonic()
    stack.app_cpu.start()
    samples = h.closed_loop(worker, args.connections, args.duration)
    cpu_s = stack.app_cpu.stop()
    elapsed = time.monotonic() - started
    good = [s for s in samples if s[0]]
    posts = [s[2] * 1000 for s in good]
    pairs = [(s[1] + s[2]) * 1000 for s in good]
    bad = [s for s in samples if not s[0]]
    return h.Result("login", len(good) / elapsed, h.percentile(pairs, 50), h.percentile(pairs, 99),
                    len(good), len(bad), len(samples),
                    extra={"cpu_ms_per_req": round(cpu_s * 1000 / max(len(samples), 1), 3),
                           "post_p50_ms": round(h.percentile(posts, 50), 1),
                           "post_p99_ms": round(h.percentile(posts, 99), 1),
                           "get_p50_ms": round(h.percentile([s[1] * 1000 for s in good], 50), 2)},
                    last_bad=bad[-1][3] if bad else "")


def run_forgot(stack: Stack, args, smtp) -> h.Result:
    """Open loop at a fixed rate: POST /forgot-password with a fresh existing name each time,
    so every request issues a code and queues an email for the slow SMTP server. Latency is
    measured from the scheduled start (no coordinated omission)."""
    base, rate = stack.base, args.forgot_rate
    names = iter(stack.forgot_names)
    pool_conns: list = []
    lock = threading.Lock()

    def new_conn():
        conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
        status, hdrs, body = h.request("GET", base + "/forgot-password", conn=conn)
        return conn, h.cookie_from(hdrs), h.csrf_from(body)

    def one(scheduled: float, name: str):
        with lock:
            item = pool_conns.pop() if pool_conns else None
        if item is None:
            item = new_conn()
        conn, cookie, csrf = item
        start = time.perf_counter()
        status, hdrs, body = h.request(
            "POST", base + "/forgot-password", conn=conn,
            body=h.form({"csrf_token": csrf, "username": name}),
            headers={**h.FORM, "Cookie": f"{h.SESSION_COOKIE}={cookie}"})
        end = time.perf_counter()
        with lock:
            pool_conns.append(item)
        ok = status == 303 and "/forgot-password/confirm" in hdrs.get("location", "")
        return ok, end - scheduled, end - start, f"{status} {body[:200]!r}"

    for _ in range(4):
        pool_conns.append(new_conn())
    mails_before = smtp.received
    total = int(rate * args.duration)
    stack.app_cpu.start()
    futures = []
    with ThreadPoolExecutor(32) as pool:
        t0 = time.perf_counter() + 0.2
        for i in range(total):
            scheduled = t0 + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(one, scheduled, next(names)))
        samples = [f.result() for f in futures]
    elapsed = time.perf_counter() - t0
    cpu_s = stack.app_cpu.stop()
    good = [s for s in samples if s[0]]
    lat = [s[1] * 1000 for s in good]
    bad = [s for s in samples if not s[0]]
    return h.Result("forgot_password", len(good) / elapsed, h.percentile(lat, 50),
                    h.percentile(lat, 99), len(good), len(bad), len(samples),
                    extra={"offered_rps": rate, "max_ms": round(max(lat, default=0), 1),
                           "cpu_ms_per_req": round(cpu_s * 1000 / max(len(samples), 1), 3),
                           "smtp_delivered_during": smtp.received - mails_before},
                    last_bad=bad[-1][3] if bad else "")


# --------------------------------------------------------------------------- one configuration

def run_config(db: str, workers: int, args, wanted: list[str], smtp) -> dict:
    settings = h.GunicornSettings(workers, args.worker_class, args.threads)
    workdir = Path(tempfile.mkdtemp(prefix=f"authserver-bench-{db}-{workers}w-"))
    h.log(f"{db}, {workers} worker(s) {settings.worker_class}: setting up in {workdir}")
    load_before = os.getloadavg()[0]
    stack = Stack(db, settings, smtp[0].port, workdir, args.access_token_alg)
    try:
        forgot_users = int(args.forgot_rate * args.duration) + 50
        stack.seed(forgot_users)
        stack.start()
        h.log("  floor (before)")
        floor_before = run_floor(stack, args)
        results = run_wrk_scenarios(stack, args, wanted)
        if "login" in wanted:
            h.log("  login")
            results.append(guarded("login", run_login, stack, args))
        if "forgot_password" in wanted:
            h.log("  forgot_password")
            results.append(guarded("forgot_password", run_forgot, stack, args, smtp[1]))
        h.log("  floor (after)")
        floor_after = run_floor(stack, args)
    finally:
        stack.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    floor_rps = (floor_before.rps + floor_after.rps) / 2
    floor_p99 = (floor_before.p99_ms + floor_after.p99_ms) / 2
    floor_cpu = (floor_before.extra.get("cpu_ms_per_req", 0)
                 + floor_after.extra.get("cpu_ms_per_req", 0)) / 2
    rows = []
    by_name = {r.scenario: r for r in results}
    for r in [floor_before, *results, floor_after]:
        f_rps = r.extra.get("paired_floor_rps") or floor_rps
        f_p99 = r.extra.get("paired_floor_p99_ms") or floor_p99
        f_cpu = r.extra.get("paired_floor_cpu_ms") or floor_cpu
        cpu_ms = r.extra.get("cpu_ms_per_req")
        row = {"db": db, "workers": workers, **r.as_dict(),
               "x_floor": round(r.rps / f_rps, 3) if f_rps else None,
               "p99_x_floor": round(r.p99_ms / f_p99, 2) if f_p99 else None,
               "cpu_x_floor": round(f_cpu / cpu_ms, 3) if cpu_ms and f_cpu else None}
        if r is floor_before:
            row["scenario"] = "floor (before)"
        elif r is floor_after:
            row["scenario"] = "floor (after)"
        row["target"] = TARGETS.get(r.scenario, "")
        row["verdict"] = verdict(r, row, by_name)
        rows.append(row)
    drift = abs(floor_before.rps - floor_after.rps) / max(floor_rps, 1)
    db_cpu_missing = bool(getattr(stack, "db_pids", None) and stack.db_pids.failed)
    return {"db": db, "workers": workers, "gunicorn": settings.args(), "floor_rps": floor_rps,
            "floor_drift": round(drift, 3), "loadavg_1min": [load_before, os.getloadavg()[0]],
            "db_cpu_missing": db_cpu_missing,
            "rows": rows}


def guarded(name: str, fn, *args) -> h.Result:
    """Run one scenario; a crash becomes an error row instead of ending the whole run."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - reported in the table and the notes
        h.log(f"  {name} failed: {exc!r}")
        return h.Result(name, 0.0, float("nan"), float("nan"), 0, 1, 0,
                        last_bad=f"scenario crashed: {exc!r}"[:300])


def verdict(r: h.Result, row: dict, by_name: dict) -> str:
    if r.bad:
        return f"ERRORS ({r.bad})"
    x = row["x_floor"] or 0
    if r.scenario == "client_credentials":
        return "ok" if x >= 0.70 and r.p99_ms < 30 else "MISS"
    if r.scenario == "refresh_token":
        return "ok" if x >= 0.45 and r.p99_ms < 30 else "MISS"
    if r.scenario == "forgot_password":
        return "ok" if r.p99_ms < 50 else "MISS"
    if r.scenario == "refresh_redirect" and "authorize_prompt_none" in by_name:
        # Paired rounds: the median of the round-by-round ratios, so one round in which the
        # machine stalled does not decide (the summed req/s are in the table beside it).
        ratios = [x for x in r.extra.get("round_ratios_refresh_over_prompt_none") or [] if x]
        if ratios:
            return "ok" if statistics.median(ratios) >= 1 else "MISS"
        return "ok" if r.rps >= by_name["authorize_prompt_none"].rps else "MISS"
    return ""


# --------------------------------------------------------------------------- output

COLUMNS = [("scenario", "scenario", "{}"), ("db", "db", "{}"), ("workers", "w", "{}"),
           ("rps", "req/s", "{:.0f}"), ("p50_ms", "p50 ms", "{:.1f}"),
           ("p99_ms", "p99 ms", "{:.1f}"), ("x_floor", "×floor", "{:.2f}"),
           ("p99_x_floor", "p99×floor", "{:.2f}"), ("cpu_ms_per_req", "cpu ms/req", "{:.2f}"),
           ("cpu_x_floor", "cpu×floor", "{:.2f}"), ("bad", "errors", "{}"),
           ("target", "target", "{}"), ("verdict", "verdict", "{}")]


def table(configs: list[dict], markdown: bool = False) -> str:
    rows = [[fmt.format(row[key]) if row.get(key) is not None else "" for key, _, fmt in COLUMNS]
            for cfg in configs for row in cfg["rows"]]
    head = [title for _, title, _ in COLUMNS]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def notes(configs: list[dict]) -> list[str]:
    out = []
    for cfg in configs:
        for row in cfg["rows"]:
            if row["scenario"] == "login" and "post_p50_ms" in row:
                out.append(f"{cfg['db']}/{cfg['workers']}w login: POST /login alone p50 "
                           f"{row['post_p50_ms']} ms, p99 {row['post_p99_ms']} ms (argon2id "
                           f"verification dominates); GET /login p50 {row['get_p50_ms']} ms; "
                           "p50/p99 in the table are for the GET+POST pair")
            if row["scenario"] == "forgot_password" and "offered_rps" in row:
                out.append(f"{cfg['db']}/{cfg['workers']}w forgot_password: offered "
                           f"{row['offered_rps']}/s, max {row['max_ms']} ms; the 1 s/message "
                           f"SMTP server took {row['smtp_delivered_during']} messages during "
                           "the run (delivery is out of band)")
            if row.get("last_bad"):
                out.append(f"{cfg['db']}/{cfg['workers']}w {row['scenario']}: last error: "
                           f"{row['last_bad'][:300]}")
        ratios = next((r["round_ratios_refresh_over_prompt_none"] for r in cfg["rows"]
                       if r.get("round_ratios_refresh_over_prompt_none")), None)
        if ratios:
            out.append(f"{cfg['db']}/{cfg['workers']}w: /refresh over prompt=none req/s, round "
                       "by round (alternating order): " + ", ".join(map(str, ratios))
                       + f"; median {statistics.median([x for x in ratios if x] or [0]):.3f}")
        paired = [f"{r['scenario']} {r['paired_floor_rps']:.0f}/s" for r in cfg["rows"]
                  if r.get("paired_floor_rps")]
        if paired:
            out.append(f"{cfg['db']}/{cfg['workers']}w: floor measured right before "
                       + ", ".join(paired) + " (their ×floor uses it); load average "
                       f"{cfg['loadavg_1min'][0]:.1f} at start, "
                       f"{cfg['loadavg_1min'][1]:.1f} at end")
        if cfg.get("db_cpu_missing"):
            out.append(f"{cfg['db']}/{cfg['workers']}w: PostgreSQL backends could not be listed "
                       "for a while: their CPU is missing from some cpu ms/req figures")
        if cfg["floor_drift"] > 0.15:
            out.append(f"{cfg['db']}/{cfg['workers']}w: the floor moved "
                       f"{cfg['floor_drift']:.0%} between before and after: the machine was "
                       "busy with something else, read the ratios with care")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--workers", default="1,2", help="gunicorn worker counts, e.g. 1,2")
    parser.add_argument("--duration", type=float, default=10, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--worker-class", choices=("gthread", "sync"), default="gthread")
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument("--pair-rounds", type=int, default=6,
                        help="alternating rounds of /refresh against prompt=none")
    parser.add_argument("--forgot-rate", type=float, default=20, help="POST /forgot-password/s")
    parser.add_argument("--smtp-delay", type=float, default=1.0, help="seconds per message")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help="comma-separated subset of: " + ", ".join(SCENARIOS))
    parser.add_argument("--access-token-alg", choices=("RS256", "ES256"), default="RS256",
                        help="AUTHSERVER_ACCESS_TOKEN_ALG for Authserver (the floor stays RS256)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folders (logs)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanups on kill
    wanted = [s for s in SCENARIOS if s in args.scenarios.split(",")]
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    workers = [int(w) for w in args.workers.split(",")]
    h.ensure_wrk()
    smtp = start_smtp(args.smtp_delay)
    configs = []
    started = datetime.now()
    try:
        for db in dbs:
            for w in workers:
                configs.append(run_config(db, w, args, wanted, smtp))
                RESULTS.mkdir(exist_ok=True)
                (RESULTS / "partial.json").write_text(json.dumps(configs, indent=2) + "\n")
    finally:
        smtp[0].stop()
    report = {
        "started": started.isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_at_end": os.getloadavg()},
        "settings": {"duration_s": args.duration, "connections": args.connections,
                     "access_token_alg": args.access_token_alg,
                     "worker_class": args.worker_class, "threads": args.threads,
                     "forgot_rate": args.forgot_rate, "smtp_delay_s": args.smtp_delay},
        "configs": configs,
        "notes": notes(configs),
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    text = table(configs)
    md = (f"# Authserver benchmark {report['started']}\n\n{args.connections} connections, "
          f"{args.duration:g} s per scenario, gunicorn {args.worker_class}"
          f"{f' ({args.threads} threads)' if args.worker_class == 'gthread' else ''}; "
          f"access tokens {args.access_token_alg}; "
          f"{os.cpu_count()} CPUs.\n\n" + table(configs, markdown=True) + "\n\n"
          + "\n".join(f"- {n}" for n in report["notes"]) + "\n")
    for name in (f"{stamp}", "latest"):
        (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
        (RESULTS / f"{name}.md").write_text(md)
    print(text)
    for n in report["notes"]:
        print("- " + n)
    print(f"\nwritten: {RESULTS / (stamp + '.json')} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
