"""Users module search with a million users: p50/p99 of GET /admin/users?q=<part of a name>.

    .venv/bin/python bench/users_search.py [--db postgres|sqlite|both] [--users 1000000]
        [--sqlite-users N] [--requests 200] [--keep-sqlite FILE | --sqlite-file FILE]
        [--pg-db NAME] [--keep-postgres | --reuse-postgres]

Creates a fresh database (`authserver_bench_users` on the local PostgreSQL, or a SQLite file
in a temp folder), runs `authserver init`, bulk-loads the users (PostgreSQL: COPY, with the
table's secondary indexes dropped during the load and rebuilt after, as one would for a
migration; SQLite: executemany in batches), starts Authserver under gunicorn, signs in as an
administrator through the login form and times the search page, one request at a time.
Then it times the search alone (the Users module's call, in process: no HTTP, no page), and
prints the plans of the statements a few searches run.

Loading a million users takes minutes: `--keep-sqlite FILE` and `--keep-postgres` keep the
loaded database, `--sqlite-file FILE` and `--reuse-postgres` start from it the next time
(migrated to the current head by `authserver init`, so new indexes are built on the way).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402
import seed  # noqa: E402

PG_DB = "authserver_bench_users"


def queries(count: int) -> dict[str, str]:
    """Partial-name queries of several selectivities, taken from the generated data."""
    known = seed.usernames(min(count, 50_000))[min(count, 50_000) * 2 // 3]
    return {
        "last name (~1/140 of users)": "okafor",
        "rare: first.last prefix (~1/18,000)": "mary.tan",
        "exact user name": known,
        "no match": "zqxj",
        "dense: first name and dot (~1/130)": "william.",
        "dense: 3 letters (~1/6)": "son",
        "email domain fragment (~1/4)": "@corp.exa",
        "email fragment": "tanaka.12",
        "two letters: prefix (~1/60)": "yu",
        "two letters, no match": "zq",
        "one letter: prefix": "k",
    }


def pg_load(url: str, count: int) -> float:
    """COPY `count` users with the secondary indexes of `users` rebuilt after the load."""
    import psycopg
    raw_url = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(raw_url, autocommit=True) as conn:
        defs = conn.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = 'users' "
            "AND i.indexname NOT IN (SELECT conname FROM pg_constraint "
            "WHERE conrelid = 'users'::regclass)").fetchall()
        for name, _ in defs:
            conn.execute(f'DROP INDEX "{name}"')
    started = time.monotonic()
    seed.insert_users(url, count, progress=lambda n: h.log(f"  {n:,} users") if
                      n % 250_000 == 0 else None)
    with psycopg.connect(raw_url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        for name, indexdef in defs:
            t0 = time.monotonic()
            conn.execute(indexdef)
            h.log(f"  rebuilt {name} in {time.monotonic() - t0:.0f} s")
        conn.execute("VACUUM ANALYZE users")
    return time.monotonic() - started


def explain(url: str, qs: list[str]) -> str:
    """The plan of every statement one search for each q runs (the Users module's first
    page), as the database executed it (PostgreSQL: EXPLAIN ANALYZE)."""
    os.environ["DATABASE_URL"] = url
    from sqlalchemy import event

    from authserver import create_app
    from authserver.accounts import search
    from authserver.extensions import db
    app = create_app()
    out = []
    with app.app_context():
        seen = []
        listen = lambda conn, cursor, sql, params, context, many: seen.append((sql, params))  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listen)
        for q in qs:
            seen.clear()
            search.page_ids(q, limit=21)
            statements = list(seen)
            pg = db.engine.dialect.name == "postgresql"
            for sql, params in statements:
                how = "EXPLAIN (ANALYZE, BUFFERS) " if pg else "EXPLAIN QUERY PLAN "
                plan = db.session.connection().exec_driver_sql(how + sql, params)
                out.append(f"-- q={q!r}\n{sql}\n" + "\n".join(str(r[-1]) for r in plan))
        event.remove(db.engine, "before_cursor_execute", listen)
    return "\n\n".join(out)


def measure_http(base: str, admin_password: str, qs: dict[str, str], n: int,
                 max_seconds: float) -> dict:
    status, hdrs, body = h.request("GET", base + "/login")
    cookie = h.cookie_from(hdrs)
    data = h.form({"csrf_token": h.csrf_from(body), "username": "benchadmin",
                   "password": admin_password})
    status, hdrs, body = h.request("POST", base + "/login", body=data,
                                   headers={**h.FORM, "Cookie": f"{h.SESSION_COOKIE}={cookie}"})
    if status not in (302, 303):
        raise RuntimeError(f"admin login answered {status}: {body[:300]!r}")
    cookie = h.cookie_from(hdrs) or cookie
    import http.client
    cookie_hdr = {"Cookie": f"{h.SESSION_COOKIE}={cookie}"}
    conn = http.client.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]), timeout=60)
    out = {}
    for label, q in qs.items():
        times = []
        deadline = time.monotonic() + max_seconds
        for i in range(n + 3):
            t0 = time.perf_counter()
            status, _, body = h.request("GET", f"{base}/admin/users?{urlencode({'q': q})}",
                                        conn=conn, headers=cookie_hdr)
            elapsed = (time.perf_counter() - t0) * 1000
            if status != 200:
                raise RuntimeError(f"/admin/users answered {status}: {body[:300]!r}")
            if i >= 3:  # the first few warm the caches
                times.append(elapsed)
            if i >= 8 and time.monotonic() > deadline:
                break
        out[label] = _summary(q, times, body.count(b"View profile"))
        h.log(f"  {label}: {out[label]}")
    return out


def measure_service(url: str, qs: dict[str, str], n: int, max_seconds: float) -> dict:
    """The search alone: `admin.services.search_users(q)`, the Users module's call, in an app
    context (no HTTP, no page): what the database and the ORM cost."""
    os.environ["DATABASE_URL"] = url
    from authserver import create_app
    from authserver.admin import services
    app = create_app()
    out = {}
    with app.app_context():
        for label, q in qs.items():
            times = []
            deadline = time.monotonic() + max_seconds
            for i in range(n + 3):
                t0 = time.perf_counter()
                rows, _ = services.search_users(q)
                if i >= 3:
                    times.append((time.perf_counter() - t0) * 1000)
                if i >= 8 and time.monotonic() > deadline:
                    break
            out[label] = _summary(q, times, len(rows))
            h.log(f"  {label}: {out[label]}")
    return out


def _summary(q: str, times: list[float], shown: int) -> dict:
    return {"q": q, "p50_ms": round(h.percentile(times, 50), 2),
            "p99_ms": round(h.percentile(times, 99), 2), "max_ms": round(max(times), 2),
            "n": len(times), "results_on_page": shown}


def run_db(db: str, count: int, args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"authserver-search-{db}-"))
    if db == "postgres":
        url = h.PG_APP_URL.format(name=args.pg_db) if args.reuse_postgres \
            else h.pg_recreate(args.pg_db)
    else:
        url = f"sqlite:///{workdir / 'users.db'}"
    port = h.free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AUTHSERVER_", "MAIL_")) and k != "DATABASE_URL"}
    env.update({"AUTHSERVER_INSTANCE_PATH": str(workdir / "instance"),
                "AUTHSERVER_KEYS_DIR": str(workdir / "keys"),
                "AUTHSERVER_ISSUER": f"http://127.0.0.1:{port}",
                # Fixed: a database kept for a later run holds keys sealed under it.
                "AUTHSERVER_SECRET_KEY": "users-search-bench-only-" + "k" * 32,
                "AUTHSERVER_RATELIMIT_ENABLED": "false", "DATABASE_URL": url})
    os.environ.update({k: v for k, v in env.items() if k.startswith("AUTHSERVER_")})
    server = None
    try:
        if db == "sqlite" and args.sqlite_file:
            h.log(f"sqlite: a copy of {args.sqlite_file} (made by an earlier run), migrated")
            shutil.copy(args.sqlite_file, workdir / "users.db")
            h.cli(["init"], env)
            load_s = 0.0
        elif db == "postgres" and args.reuse_postgres:
            h.log(f"postgres: {args.pg_db} (loaded by an earlier run), migrated")
            h.cli(["init"], env, timeout=1800)
            load_s = 0.0
        else:
            h.log(f"{db}: init, then {count:,} users")
            h.cli(["init"], env)
            h.cli(["users", "create", "benchadmin", "--email", "benchadmin@example.com",
                   "--password", h.PASSWORD, "--admin"], env)
            load_s = pg_load(url, count) if db == "postgres" else seed.insert_users(
                url, count, progress=lambda n: h.log(f"  {n:,} users") if n % 250_000 == 0
                else None)
        if db == "sqlite" and args.keep_sqlite:
            shutil.copy(workdir / "users.db", args.keep_sqlite)
        h.log(f"{db}: loaded in {load_s:.0f} s")
        qs = queries(count)
        server = h.Server("authserver", "wsgi:app", h.ROOT, port, h.GunicornSettings(1), env,
                          workdir / "authserver.log")
        server.wait_ready()
        how = "GET /admin/users?q=... as a signed-in admin, one connection, gunicorn 1 worker; " \
              "search only: admin.services.search_users(q) in an app context"
        load_before = os.getloadavg()[0]
        results = measure_http(server.base, h.PASSWORD, qs, args.requests, args.max_seconds)
        server.stop()
        server = None
        h.log(f"{db}: the search alone, in process")
        alone = measure_service(url, qs, args.requests, args.max_seconds)
        for label, r in results.items():
            r["search_p50_ms"], r["search_p99_ms"] = (alone[label]["p50_ms"],
                                                      alone[label]["p99_ms"])
        how += f"; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
        plan = explain(url, ["okafor", "william.", "zq", "yu"])
        return {"db": db, "users": count, "load_seconds": round(load_s, 1), "how": how,
                "results": results, "plan": plan}
    finally:
        if server is not None:
            server.stop()
        if db == "postgres" and not (args.keep_postgres or args.reuse_postgres):
            h.pg_drop(args.pg_db)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("postgres", "sqlite", "both"), default="both")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--sqlite-users", type=int, default=None,
                        help="users for SQLite (default: --users)")
    parser.add_argument("--sqlite-file", type=Path, default=None,
                        help="start SQLite from a copy of this database (--keep-sqlite of an "
                             "earlier run) instead of loading the users again")
    parser.add_argument("--keep-sqlite", type=Path, default=None,
                        help="copy the loaded SQLite database here, for --sqlite-file")
    parser.add_argument("--pg-db", default=PG_DB, help="the PostgreSQL database to use")
    parser.add_argument("--keep-postgres", action="store_true",
                        help="keep the loaded PostgreSQL database, for --reuse-postgres")
    parser.add_argument("--reuse-postgres", action="store_true",
                        help="use the database --pg-db as loaded by an earlier run "
                             "(--keep-postgres) instead of loading the users again")
    parser.add_argument("--requests", type=int, default=200, help="per query")
    parser.add_argument("--max-seconds", type=float, default=30,
                        help="per query: stop early (after at least 6 samples) past this")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanups on kill
    dbs = ["postgres", "sqlite"] if args.db == "both" else [args.db]
    reports = []
    for db in dbs:
        count = args.sqlite_users or args.users if db == "sqlite" else args.users
        reports.append(run_db(db, count, args))
    lines = ["| db | users | query | q | n | p50 ms | p99 ms | max ms | shown | verdict | "
             "search only p50 / p99 ms |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for rep in reports:
        for label, r in rep["results"].items():
            verdict = "ok" if r["p99_ms"] < 50 else "MISS"
            lines.append(f"| {rep['db']} | {rep['users']:,} | {label} | `{r['q']}` | {r['n']} | "
                         f"{r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} | "
                         f"{r['results_on_page']} | {verdict} | "
                         f"{r['search_p50_ms']} / {r['search_p99_ms']} |")
    text = "\n".join(lines)
    print(text)
    for rep in reports:
        print(f"\n{rep['db']}: {rep['users']:,} users loaded in {rep['load_seconds']} s; "
              f"measured: {rep['how']}")
        if rep["plan"]:
            print(f"{rep['db']}: the statements of a few searches and their plans:\n"
                  + rep["plan"])
    h.BENCH_DIR.joinpath("results").mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for name in (f"users-search-{stamp}", "users-search-latest"):
        (h.BENCH_DIR / "results" / f"{name}.json").write_text(json.dumps(reports, indent=2))
        (h.BENCH_DIR / "results" / f"{name}.md").write_text(
            "# Users search\n\n" + text + "\n\n" + "\n".join(
                f"- {r['db']}: {r['users']:,} users, loaded in {r['load_seconds']} s; {r['how']}"
                for r in reports) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
