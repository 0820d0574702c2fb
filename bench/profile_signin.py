"""Where one sign-in's time goes, in process, set up exactly as the tests set up.

    .venv/bin/python bench/profile_signin.py [--n 300] [--db-url URL] [--hash cheap|default]
        [--name known|unknown] [--budget-spent] [--cprofile 30] [--sort tottime|cumulative]
        2>/dev/null

A sign-in is what bench/signin_flood.py sends: GET /login (for its CSRF token), then
POST /login with the right password, from a fresh browser and a random X-Forwarded-For
address, with the rate limits on (memory://) as a server runs them. A fresh app from
tests/support.py (base_settings, make_user) on a temp SQLite file, or on --db-url (a
PostgreSQL database you made). `--hash cheap` (the default) keeps the tests' argon2id
(m=1 MiB, t=1), so what is printed is the sign-in's own work besides hashing; `--hash
default` uses the shipped cost. `--name unknown` signs in with a fresh name without an
account each time (a failed sign-in), `--budget-spent` first spends the deployment's
failed-sign-in budget (the cheap path). Printed: CPU ms per sign-in and per request (the
test client's own work included, so compare before/after rather than with the benchmarks),
the SQL statements of one sign-in, and with --cprofile the top functions. The audit log
goes to stderr.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support import PASSWORD, csrf_from  # noqa: E402

from authserver.config import Defaults  # noqa: E402

import profile_token  # noqa: E402  (bench/, this script's own folder)


def build(db_url: str | None, hash_cost: str):
    extra = {"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": "memory://",
             "RATELIMIT_LOGIN_FAILURES_GLOBAL": "1000000 per minute",
             "PROXY_FIX_X_FOR": 1}  # the address comes from X-Forwarded-For
    if hash_cost == "default":
        for name in ("TIME_COST", "MEMORY_COST", "PARALLELISM"):
            extra[f"PASSWORD_HASH_{name}"] = getattr(Defaults, f"PASSWORD_HASH_{name}")
    return profile_token.build(db_url, **extra)


class SignIns:
    """One sign-in per call, with the CPU of its GET and its POST added up separately."""

    def __init__(self, app, name: str, password: str):
        self.app, self.name, self.password = app, name, password
        self.cpu = {"GET /login": 0.0, "POST /login": 0.0}

    def __call__(self) -> None:
        client = self.app.test_client()
        address = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        headers = {"X-Forwarded-For": address}
        started = time.process_time()
        page = client.get("/login", headers=headers)
        between = time.process_time()
        name = self.name or f"nobody{random.randrange(10**9)}"  # unknown: fresh, never locked
        resp = client.post("/login", headers=headers, data={
            "csrf_token": csrf_from(page.get_data(as_text=True)),
            "username": name, "password": self.password})
        ended = time.process_time()
        self.cpu["GET /login"] += between - started
        self.cpu["POST /login"] += ended - between
        expected = 303 if self.password == PASSWORD else 200
        assert resp.status_code == expected, (resp.status_code, resp.get_data(as_text=True)[:300])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--db-url", default=None)
    parser.add_argument("--hash", choices=("cheap", "default"), default="cheap")
    parser.add_argument("--name", choices=("known", "unknown"), default="known")
    parser.add_argument("--budget-spent", action="store_true",
                        help="spend the failed-sign-in budget first (unknown names: cheap path)")
    parser.add_argument("--cprofile", type=int, default=0, metavar="TOP")
    parser.add_argument("--sort", choices=("tottime", "cumulative"), default="tottime")
    args = parser.parse_args()
    app = build(args.db_url, args.hash)
    if args.budget_spent:
        app.config["RATELIMIT_LOGIN_FAILURES_GLOBAL"] = "1 per hour"
        SignIns(app, "spend-the-budget", "wrong password")()
    if args.name == "known":
        send = SignIns(app, "benchuser", PASSWORD)
    else:
        send = SignIns(app, "", "wrong password")
    for _ in range(30):
        send()
    statements = profile_token.statements_of(app, send)
    send.cpu = dict.fromkeys(send.cpu, 0.0)
    for _ in range(args.n):
        send()
    total = sum(send.cpu.values()) * 1000 / args.n
    parts = ", ".join(f"{k} {v * 1000 / args.n:.2f}" for k, v in send.cpu.items())
    spent = ", budget spent" if args.budget_spent else ""
    print(f"sign-in ({args.name} name, {args.hash} hash{spent}): {total:.2f} CPU ms over {args.n} "
          f"({parts}; test client included)")
    print(f"SQL of one sign-in ({len(statements)}):")
    for sql in statements:
        print("  " + " ".join(sql.split())[:160])
    if args.cprofile:
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.n):
            send()
        profile.disable()
        stats = pstats.Stats(profile)
        print(f"Python function calls per sign-in: {stats.total_calls / args.n:.0f} (a steadier "
              "yardstick than CPU time on a shared machine)")
        stats.sort_stats(args.sort).print_stats(args.cprofile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
