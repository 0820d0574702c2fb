"""Where the time of one request goes: an in-process breakdown, and py-spy under gunicorn.

    .venv/bin/python bench/profile_token.py [--db sqlite|postgres] [--n 2000]
        [--scenario client_credentials|refresh_token|userinfo|discovery|jwks|authorize|refresh|all]
        [--pyspy SECONDS] [--cprofile]

In-process (default): a fresh Authserver (temp folder, SQLite file or the `authserver_bench`
PostgreSQL database), Flask's test client, N requests of one kind. Timers wrap the parts
(SQL at the cursor, SQLAlchemy session calls, JWT signing and verification, keyed hashes,
JSON) and the SQL statements of one request are listed. `--cprofile` adds the top functions.

`--pyspy S`: the same endpoint under gunicorn (1 gthread worker) and 16 wrk connections for
S seconds, sampled by py-spy; samples are grouped by the innermost library they are in.
"""
from __future__ import annotations

import argparse
import cProfile
import collections
import functools
import io
import json
import os
import pstats
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402

SCENARIOS = ("client_credentials", "refresh_token", "userinfo", "discovery", "jwks",
             "authorize", "refresh", "forgot_password")


# --------------------------------------------------------------------------- timers

class Timers:
    def __init__(self):
        self.total = collections.Counter()
        self.calls = collections.Counter()
        self.depth = collections.Counter()
        self.sql: list[str] = []
        self.recording = False

    def wrap(self, owner, attr: str, label: str):
        original = getattr(owner, attr)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            if self.depth[label]:
                return original(*args, **kwargs)  # count only the outermost call
            self.depth[label] += 1
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.depth[label] -= 1
                self.total[label] += time.perf_counter() - t0
                self.calls[label] += 1

        setattr(owner, attr, timed)

    def sql_events(self, engine):
        from sqlalchemy import event
        starts = {}

        @event.listens_for(engine, "before_cursor_execute")
        def before(conn, cursor, statement, params, context, executemany):
            starts[id(cursor)] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def after(conn, cursor, statement, params, context, executemany):
            self.total["sql at the cursor"] += time.perf_counter() - starts.pop(id(cursor))
            self.calls["sql at the cursor"] += 1
            if self.recording:
                self.sql.append(" ".join(statement.split())[:160])

        @event.listens_for(engine, "commit")
        def commit(conn):
            self.calls["COMMIT"] += 1
            if self.recording:
                self.sql.append("COMMIT")

    def reset(self):
        self.total.clear()
        self.calls.clear()


def instrument(app, timers: Timers) -> None:
    import joserfc.jwt
    import sqlalchemy.orm
    from authserver import security
    from authserver.extensions import db
    for attr in ("execute", "scalar", "scalars", "get", "commit", "flush", "refresh"):
        timers.wrap(sqlalchemy.orm.Session, attr, "sqlalchemy session (incl. sql)")
    timers.wrap(joserfc.jwt, "encode", "jwt sign (joserfc, RS256)")
    timers.wrap(joserfc.jwt, "decode", "jwt verify (joserfc)")
    timers.wrap(security, "keyed_hash", "keyed_hash (HMAC-SHA256)")
    timers.wrap(app.json, "dumps", "json dumps")
    with app.app_context():
        timers.sql_events(db.engine)
        dialect = db.engine.dialect
        timers.wrap(dialect, "do_commit", "db COMMIT (driver)")
        timers.wrap(dialect, "do_rollback", "db ROLLBACK (driver, connection return)")
        timers.wrap(dialect, "do_ping", "pool pre-ping (driver)")


# --------------------------------------------------------------------------- setup

def setup(db_kind: str, workdir: Path) -> dict:
    url = h.pg_recreate("authserver_bench") if db_kind == "postgres" else \
        f"sqlite:///{workdir / 'authserver.db'}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AUTHSERVER_", "MAIL_")) and k != "DATABASE_URL"}
    env.update({"AUTHSERVER_INSTANCE_PATH": str(workdir / "instance"),
                "AUTHSERVER_KEYS_DIR": str(workdir / "keys"),
                "AUTHSERVER_ISSUER": "http://127.0.0.1:5000",
                "AUTHSERVER_SECRET_KEY": secrets.token_urlsafe(32),
                "AUTHSERVER_RATELIMIT_ENABLED": "false", "AUTHSERVER_LOOP_MAX_TRIPS": "1000000", "AUTHSERVER_LOOP_REDEEMED_MAX_TRIPS": "1000000",
                "DATABASE_URL": url})
    h.cli(["init"], env)
    h.cli(["users", "create", "benchuser", "--email", "benchuser@example.com", "--password",
           h.PASSWORD], env)
    cc = h.last_json_line(h.cli(["clients", "create", "m2m", "--grant-type",
                                 "client_credentials", "--json"], env))
    rp = h.last_json_line(h.cli(["clients", "create", "app", "--redirect-uri", h.REDIRECT_URI,
                                 "--json"], env))
    return {"env": env, "cc": cc, "rp": rp, "url": url}


def code_flow(client, rp: dict) -> dict:
    """Browser code flow through Flask's test client (it keeps the cookies)."""
    verifier, challenge = h.pkce_pair()
    q = {"response_type": "code", "client_id": rp["client_id"], "redirect_uri": h.REDIRECT_URI,
         "scope": "openid profile email offline_access", "state": "s", "nonce": "n",
         "code_challenge": challenge, "code_challenge_method": "S256"}
    r = client.get("/authorize?" + urlencode(q))
    r = client.get(r.headers["Location"])
    r = client.post("/login", data={"csrf_token": h.csrf_from(r.data), "username": "benchuser",
                                    "password": h.PASSWORD})
    r = client.get(r.headers["Location"])
    code = parse_qs(urlsplit(r.headers["Location"]).query)["code"][0]
    r = client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                    "redirect_uri": h.REDIRECT_URI, "code_verifier": verifier},
                    headers={"Authorization": h.basic(rp["client_id"], rp["client_secret"])})
    assert r.status_code == 200, r.data
    return r.get_json()


def requester(app, ctx: dict, scenario: str):
    """A function doing one request of `scenario` and checking its answer."""
    cc, rp = ctx["cc"], ctx["rp"]
    client = app.test_client()
    if scenario == "client_credentials":
        auth = {"Authorization": h.basic(cc["client_id"], cc["client_secret"])}
        return lambda: _check(client.post("/token", data={"grant_type": "client_credentials"},
                                          headers=auth), 200)
    if scenario == "discovery":
        return lambda: _check(client.get("/.well-known/openid-configuration"), 200)
    if scenario == "jwks":
        return lambda: _check(client.get("/.well-known/jwks.json"), 200)
    if scenario == "forgot_password":
        import seed
        count = 5000
        seed.insert_users(ctx["url"], count, prefix="fp")
        names = iter(seed.usernames(count, prefix="fp"))
        page = client.get("/forgot-password")
        csrf = h.csrf_from(page.data)

        def forgot():
            r = _check(client.post("/forgot-password", data={"csrf_token": csrf,
                                                             "username": next(names)}), 303)
            assert "/forgot-password/confirm" in r.headers["Location"]
        return forgot
    tokens = code_flow(client, rp)
    api = app.test_client()  # no browser cookie on API calls, as from a relying app
    if scenario == "userinfo":
        auth = {"Authorization": "Bearer " + tokens["access_token"]}
        return lambda: _check(api.get("/userinfo", headers=auth), 200)
    if scenario == "refresh_token":
        auth = {"Authorization": h.basic(rp["client_id"], rp["client_secret"])}
        chain = {"rt": tokens["refresh_token"]}

        def refresh():
            r = _check(api.post("/token", headers=auth, data={
                "grant_type": "refresh_token", "refresh_token": chain["rt"]}), 200)
            chain["rt"] = r.get_json()["refresh_token"]
        return refresh
    _, challenge = h.pkce_pair()
    common = {"client_id": rp["client_id"], "redirect_uri": h.REDIRECT_URI,
              "code_challenge": challenge, "code_challenge_method": "S256"}
    cookie = client.get_cookie(h.SESSION_COOKIE).value
    fresh = app.test_client()  # the same browser session each time (the loop guard never trips)
    counter = iter(range(10**9))
    if scenario == "authorize":
        path = "/authorize?" + urlencode({"response_type": "code", "scope": "openid profile email",
                                          "prompt": "none", **common})
    else:
        path = "/refresh?" + urlencode(common)

    def redirect():
        fresh.set_cookie(h.SESSION_COOKIE, cookie, domain="localhost")
        r = _check(fresh.get(f"{path}&state=s{next(counter)}"), 302)
        assert "code=" in r.headers["Location"], r.headers["Location"]
    return redirect


def _check(resp, status):
    if resp.status_code != status:
        raise RuntimeError(f"{resp.status_code}: {resp.data[:300]!r}")
    return resp


# --------------------------------------------------------------------------- in-process

def in_process(ctx: dict, scenario: str, n: int, use_cprofile: bool) -> dict:
    os.environ.update(ctx["env"])
    os.environ["AUTHSERVER_MAIL_SENDER_THREAD"] = "false"  # mail stays queued: time the request
    from authserver import create_app
    app = create_app()
    timers = Timers()
    instrument(app, timers)
    one = requester(app, ctx, scenario)
    for _ in range(min(200, n)):
        one()  # warm-up
    timers.reset()
    timers.recording = True
    one()
    statements = list(timers.sql)
    timers.recording = False
    timers.reset()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        one()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    per = {k: v / n * 1000 for k, v in timers.total.items()}
    calls = {k: v / n for k, v in timers.calls.items()}
    report = {"scenario": scenario, "n": n, "ms_per_request": wall / n * 1000,
              "cpu_ms_per_request": cpu / n * 1000,
              "parts_ms": per, "calls_per_request": calls, "sql_one_request": statements}
    if use_cprofile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(n):
            one()
        prof.disable()
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats("tottime").print_stats(25)
        report["cprofile_tottime"] = out.getvalue()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(40)
        report["cprofile_cumulative"] = out.getvalue()
    return report


def print_report(rep: dict) -> None:
    ms = rep["ms_per_request"]
    print(f"\n== {rep['scenario']}: {ms:.3f} ms per request in-process "
          f"(≈{1000 / ms:.0f} req/s on one core, no HTTP server); "
          f"CPU {rep['cpu_ms_per_request']:.3f} ms")
    parts = rep["parts_ms"]
    sql = parts.get("sql at the cursor", 0)
    session = parts.get("sqlalchemy session (incl. sql)", 0)
    commit = parts.get("db COMMIT (driver)", 0)
    rollback = parts.get("db ROLLBACK (driver, connection return)", 0)
    rows = [("SQL at the cursor (driver + database)", sql),
            ("COMMIT at the driver (SQLite: fsync of the WAL)", commit),
            ("ROLLBACK at the driver (pool reset when the request ends)", rollback),
            ("pool_pre_ping at checkout (a round trip on PostgreSQL)",
             parts.get("pool pre-ping (driver)", 0)),
            ("SQLAlchemy ORM/session outside the driver", max(session - sql - commit, 0))]
    for label in ("jwt sign (joserfc, RS256)", "jwt verify (joserfc)",
                  "keyed_hash (HMAC-SHA256)", "json dumps"):
        if label in parts:
            rows.append((label, parts[label]))
    accounted = sum(v for _, v in rows)
    rows.append(("everything else: Flask/Werkzeug/Authlib/app code, test client", ms - accounted))
    for label, value in rows:
        print(f"  {label:<62} {value:7.3f} ms  {value / ms:5.1%}")
    calls = rep["calls_per_request"]
    print(f"  SQL statements per request: {calls.get('sql at the cursor', 0):.1f}, "
          f"COMMITs: {calls.get('COMMIT', 0):.1f}, keyed_hash calls: "
          f"{calls.get('keyed_hash (HMAC-SHA256)', 0):.1f}")
    print("  SQL of one request:")
    for s in rep["sql_one_request"]:
        print("    " + s)
    if "cprofile_tottime" in rep:
        print(rep["cprofile_tottime"])


# --------------------------------------------------------------------------- py-spy

CATEGORIES = [  # (label, pattern on a frame's file path), innermost match wins
    ("JWT: joserfc + cryptography (RSA sign/verify)", r"(^|/)(joserfc|cryptography)/"),
    ("argon2", r"(^|/)argon2/"),
    ("DB driver: psycopg", r"(^|/)psycopg/"),
    ("DB driver: sqlite3", r"(^|/)sqlite3/"),
    ("SQLAlchemy + Flask-SQLAlchemy", r"(^|/)(sqlalchemy|flask_sqlalchemy)/"),
    ("Authlib", r"(^|/)authlib/"),
    ("Flask-Limiter/limits", r"(^|/)(flask_limiter|limits)/"),
    ("prometheus_client (metrics)", r"(^|/)prometheus_client/"),
    ("Flask-WTF/WTForms", r"(^|/)(flask_wtf|wtforms)/"),
    ("Jinja2/MarkupSafe", r"(^|/)(jinja2|markupsafe)/"),
    ("itsdangerous (session cookie)", r"(^|/)itsdangerous/"),
    ("JSON", r"(^|/)json/"),
    ("hmac/hashlib/secrets/random/uuid", r"(^|/)(hmac|hashlib|secrets|random|uuid|base64)\.py"),
    ("logging", r"(^|/)logging/"),
    ("Werkzeug", r"(^|/)werkzeug/"),
    ("Flask", r"(^|/)flask/"),
    ("Authserver code", r"(^|/)authserver/"),
    ("gunicorn + sockets", r"(^|/)(gunicorn/|socket\.py|selectors\.py)"),
]


def _frame_file(frame: str) -> str:
    m = re.search(r"\(([^()]*?):\d+\)\s*$", frame)
    return m.group(1) if m else frame


def categorize(collapsed: str) -> list[tuple[str, float]]:
    counts = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        n = int(n)
        total += n
        frames = stack.split(";")
        label = "other (stdlib, interpreter)"
        for frame in reversed(frames):
            path = _frame_file(frame)
            hit = next((lab for lab, pat in CATEGORIES if re.search(pat, path)), None)
            if hit:
                label = hit
                break
        counts[label] += n
    return [(k, v / total) for k, v in counts.most_common()] if total else []


def top_app_frames(collapsed: str, limit: int = 15) -> list[tuple[str, float]]:
    """Inclusive share of samples per authserver/authlib function."""
    counts = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        seen = set()
        for frame in stack.split(";"):
            if re.search(r"(^|/)(authserver|authlib)/", _frame_file(frame)):
                name = re.sub(r":\d+\)", ")", frame)
                if name not in seen:
                    seen.add(name)
                    counts[name] += int(n)
    return [(k, v / total) for k, v in counts.most_common(limit)] if total else []


def pyspy(ctx: dict, scenario: str, seconds: float, workdir: Path) -> None:
    """Profile one gunicorn worker under wrk load (16 connections)."""
    import run
    port = h.free_port()
    env = dict(ctx["env"], AUTHSERVER_ISSUER=f"http://127.0.0.1:{port}")
    server = h.Server("authserver", "wsgi:app", h.ROOT, port, h.GunicornSettings(1), env,
                      workdir / "authserver.log")
    try:
        server.wait_ready()
        stack = type("S", (), {})()
        stack.base, stack.port, stack.cc, stack.rp = server.base, port, ctx["cc"], ctx["rp"]
        families = run.make_families(stack, 16) if scenario not in (
            "client_credentials", "discovery", "jwks") else []
        name = {"authorize": "authorize_prompt_none", "refresh": "refresh_redirect"}.get(
            scenario, scenario)
        scen = run.token_scenarios(stack, families)[name]
        if name == "refresh_token":
            scen.per_thread = [tok["refresh_token"] for tok, _ in families]
        pid = server.worker_pids()[0]
        out = workdir / "pyspy.txt"
        spy = subprocess.Popen([str(h.VENV_BIN / "py-spy"), "record", "--pid", str(pid),
                                "--duration", str(int(seconds)), "--rate", "250", "--gil",
                                "--format",
                                "raw", "--output", str(out), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        result, _ = h.run_wrk(name, server.base, scen, seconds, 16, workdir)
        spy.wait(seconds + 60)
        collapsed = out.read_text() if out.exists() else ""
        print(f"\n== py-spy, {scenario} under gunicorn (1 gthread worker, 4 threads), 16 "
              f"connections: {result.rps:.0f} req/s, p50 {result.p50_ms:.1f} ms, "
              f"p99 {result.p99_ms:.1f} ms, errors {result.bad}")
        if not collapsed:
            print("  py-spy gave no samples:", spy.stderr.read().decode()[-500:])
            return
        print("  share of the samples holding the GIL (CPU in Python), by innermost library:")
        for label, share in categorize(collapsed):
            print(f"    {label:<48} {share:6.1%}")
        print("  inclusive share by Authserver/Authlib function:")
        for frame, share in top_app_frames(collapsed):
            print(f"    {share:6.1%}  {frame}")
        keep = h.BENCH_DIR / "results" / f"pyspy-{scenario}-{ctx['db']}.txt"
        keep.parent.mkdir(exist_ok=True)
        shutil.copy(out, keep)
        print(f"  collapsed stacks: {keep} (feed to flamegraph.pl or speedscope)")
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--scenario", default="client_credentials",
                        choices=(*SCENARIOS, "all"))
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--pyspy", type=float, default=0, metavar="SECONDS")
    parser.add_argument("--json", action="store_true", help="also print the raw report")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="authserver-profile-"))
    try:
        ctx = setup(args.db, workdir)
        ctx["db"] = args.db
        scenarios = SCENARIOS if args.scenario == "all" else (args.scenario,)
        if args.pyspy:
            for scenario in scenarios:
                pyspy(ctx, scenario, args.pyspy, workdir)
        elif len(scenarios) > 1:  # one process per scenario: one app per process
            for scenario in scenarios:
                subprocess.run([sys.executable, __file__, "--db", args.db, "--scenario", scenario,
                                "--n", str(args.n)] + (["--cprofile"] if args.cprofile else []))
        else:
            for scenario in scenarios:
                rep = in_process(ctx, scenario, args.n, args.cprofile)
                print_report(rep)
                if args.json:
                    print(json.dumps(rep, indent=1, default=str))
    finally:
        if args.db == "postgres":
            h.pg_drop("authserver_bench")
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
