"""Authserver against node-oidc-provider 9, with the Flask floor as the second reference.

    .venv/bin/python bench/peer.py [--db sqlite,postgres] [--rounds 2] [--duration 5]
        [--tree PATH] [--label after]

For each database: a fresh Authserver (bench/run.py's Stack under the recommended
`gunicorn -c deploy/gunicorn.conf.py`: one worker per core, 16 threads; GUNICORN_WORKERS and
GUNICORN_THREADS in the environment override them for an experiment; `authserver init`, the
same two clients as run.py), the floor (bench/floor_app.py, under the same gunicorn file)
and node-oidc-provider (bench/node/peer.mjs under Node 22, installed into bench/node/
node_modules on first use: gitignored) configured with the same client ids and secrets,
RS256, JWT access tokens and rotating refresh tokens. Workloads, 16 connections each: POST
/token client_credentials, POST /token refresh_token (one rotating chain per connection, new
families for every run), GET discovery and JWKS. They run interleaved: each round runs every
workload on every server, the server order reversed on odd rounds, so a machine that drifts
favours none. Reported per workload and server: req/s (checked responses only), p99, server
CPU per request (from /proc: gunicorn master and workers, plus PostgreSQL's backends for
Authserver; the node process), and after the run RSS per worker; then Authserver ÷ node and
Authserver ÷ floor. `--tree` measures another checkout (e.g. `git archive main | tar -x`)
with this script, for a before/after pair. `--granian` also serves Authserver and the floor
under granian (a WSGI server in Rust: `.venv/bin/pip install granian`; 2 workers × 16
blocking threads, like the gunicorn file) in the same interleaved rounds, to show what the
serving stack costs; it is a measurement, not a supported way to run Authserver. Results:
bench/results/peer-*.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402
import run  # noqa: E402

NODE_DIR = h.BENCH_DIR / "node"
NODE_BIN = NODE_DIR / "node_modules" / ".bin" / "node"
WORKLOADS = ("client_credentials", "refresh_token", "discovery", "jwks")
SERVERS = ("node", "authserver", "floor")
GRANIAN = ("authserver-granian", "floor-granian")  # with --granian
CC_CHECK = 'return status == 200 and string.find(body, "access_token", 1, true) ~= nil'


def ensure_node() -> None:
    """npm install into bench/node (oidc-provider 9 and a Node 22 binary) when missing."""
    if not NODE_BIN.exists() or not (NODE_DIR / "node_modules" / "oidc-provider").exists():
        h.log("installing node-oidc-provider and Node 22 into bench/node/node_modules")
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True)


class NodePeer(h.Server):
    """`node peer.mjs PORT CONFIG` started by us; h.Server's wait_ready, pids and stop (which
    signals only its PID)."""

    def __init__(self, stack: run.Stack, workdir: Path):
        self.name, self.port = "node", h.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = workdir / "peer.json"
        config.write_text(json.dumps({
            "cc_client_id": stack.cc["client_id"], "cc_client_secret": stack.cc["client_secret"],
            "rp_client_id": stack.rp["client_id"], "rp_client_secret": stack.rp["client_secret"],
            "redirect_uri": h.REDIRECT_URI}))
        self.logfile = workdir / "node.log"
        self._log = open(self.logfile, "ab")
        self.proc = subprocess.Popen([str(NODE_BIN), "peer.mjs", str(self.port), str(config)],
                                     cwd=NODE_DIR, env={**os.environ, "NODE_ENV": "production"},
                                     stdout=self._log, stderr=self._log, start_new_session=True)
        self.cpu = h.CpuMeter(self.pids)

    def refresh_tokens(self, n: int) -> list[str]:
        status, _, body = h.request("GET", f"{self.base}/__bench/refresh-tokens?n={n}")
        if status != 200:
            raise RuntimeError(f"peer refused to mint refresh tokens: {body[:300]!r}")
        return json.loads(body)


class GranianServer(h.Server):
    """`granian --interface wsgi APP` with as many workers as the gunicorn file and its
    threads, started by us; h.Server's wait_ready, pids and stop (granian's master stops its
    own workers on SIGTERM)."""

    def __init__(self, name: str, app: str, chdir: Path, env: dict, workdir: Path):
        binary = h.VENV_BIN / "granian"
        if not binary.exists():
            raise SystemExit("--granian needs granian: .venv/bin/pip install granian")
        self.name, self.port = name, h.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        workers = env.get("GUNICORN_WORKERS") or str(len(os.sched_getaffinity(0)))
        threads = env.get("GUNICORN_THREADS") or "16"
        self.logfile = workdir / f"{name}.log"
        self._log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(
            [str(binary), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", workers, "--blocking-threads", threads, "--no-ws",
             "--working-dir", str(chdir), app],
            env=env, stdout=self._log, stderr=self._log, start_new_session=True)


def scenarios(stack: run.Stack) -> dict[str, dict[str, h.WrkScenario]]:
    """workload -> server -> what wrk sends; refresh chains get their tokens per run."""
    own = run.token_scenarios(stack, [])
    cc = own["client_credentials"]
    floor_token = h.WrkScenario("POST", "/token", h.FORM, "grant_type=client_credentials",
                                check_lua=CC_CHECK)
    hello = h.WrkScenario("GET", "/hello")
    found = {
        "client_credentials": {"authserver": cc, "node": cc, "floor": floor_token},
        "refresh_token": {"authserver": own["refresh_token"], "node": own["refresh_token"],
                          "floor": floor_token},
        "discovery": {"authserver": own["discovery"], "node": own["discovery"], "floor": hello},
        "jwks": {"authserver": own["jwks"], "node": h.WrkScenario("GET", "/jwks"),
                 "floor": hello},
    }
    for by_server in found.values():  # under granian: the same requests
        by_server["authserver-granian"] = by_server["authserver"]
        by_server["floor-granian"] = by_server["floor"]
    return found


def rss_kib(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out.append(int(line.split()[1]))
        except OSError:
            pass
    return out


def run_db(db: str, args) -> dict:
    settings = h.GunicornSettings(conf=args.conf)
    workdir = Path(tempfile.mkdtemp(prefix=f"authserver-peer-{db}-"))
    stack = run.Stack(db, settings, h.free_port(), workdir)
    peer, granian = None, {}
    try:
        h.log(f"{db}: seeding Authserver ({args.label}: {h.ROOT})")
        stack.seed(0)
        stack.start()
        peer = NodePeer(stack, workdir)
        peer.wait_ready("/.well-known/openid-configuration")
        bases = {"authserver": stack.base, "node": peer.base, "floor": stack.floor.base}
        meters = {"authserver": stack.app_cpu, "node": peer.cpu, "floor": stack.floor_cpu}
        servers = SERVERS
        if args.granian:
            granian = {"authserver-granian": GranianServer(
                           "authserver-granian", "wsgi:app", h.ROOT, stack.server_env, workdir),
                       "floor-granian": GranianServer(
                           "floor-granian", "floor_app:app", h.BENCH_DIR, dict(os.environ),
                           workdir)}
            for name, srv in granian.items():
                srv.wait_ready()
                bases[name] = srv.base
                meters[name] = (stack.cpu_with_database(srv) if name == "authserver-granian"
                                else h.CpuMeter(srv.pids))
            servers = SERVERS + GRANIAN
        scens = scenarios(stack)
        samples: dict[tuple[str, str], list[h.Result]] = {}
        for rnd in range(args.rounds + 1):  # round 0 warms every server up, unrecorded
            order = servers if rnd % 2 else servers[::-1]
            for workload in WORKLOADS:
                for server in order:
                    scen = scens[workload][server]
                    if workload == "refresh_token" and not server.startswith("floor"):
                        scen.per_thread = fresh_chains(server, stack, peer, args.connections)
                    seconds = 1 if rnd == 0 else args.duration
                    result, _ = h.run_wrk(f"{workload}-{server}", bases[server], scen, seconds,
                                          args.connections, workdir,
                                          cpu=meters[server] if rnd else None)
                    if rnd:
                        samples.setdefault((workload, server), []).append(result)
                        h.log(f"  round {rnd} {workload:18} {server:10} {result.rps:7.0f} req/s"
                              f" p99 {result.p99_ms:6.1f} ms bad {result.bad}")
        rss = {"authserver": rss_kib(stack.app.worker_pids()), "node": rss_kib(peer.pids()),
               "floor": rss_kib(stack.floor.worker_pids())}
        for name, srv in granian.items():
            rss[name] = rss_kib(srv.worker_pids())
        return {"db": db, "label": args.label, "tree": str(h.ROOT), "rss_kib": rss,
                "rows": summarise(samples)}
    finally:
        for srv in granian.values():
            srv.stop()
        if peer is not None:
            peer.stop()
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def fresh_chains(server: str, stack: run.Stack, peer: NodePeer, n: int) -> list[str]:
    """Refresh tokens of new families; Authserver's, under either server, come from the code
    flow through gunicorn (both read the same database)."""
    if server == "node":
        return peer.refresh_tokens(n)
    return [tok["refresh_token"] for tok, _ in run.make_families(stack, n)]


def summarise(samples: dict) -> list[dict]:
    """Per workload and server: requests over seconds across rounds, the median p99."""
    rows = []
    for (workload, server), parts in samples.items():
        seconds = sum(p.ok / p.rps for p in parts if p.rps)
        requests = sum(p.requests for p in parts)
        cpu = sum(p.extra.get("cpu_ms_per_req", 0) * p.requests for p in parts)
        rows.append({"workload": workload, "server": server,
                     "rps": round(sum(p.ok for p in parts) / seconds, 1) if seconds else 0.0,
                     "p99_ms": round(statistics.median(p.p99_ms for p in parts), 2),
                     "cpu_ms_per_req": round(cpu / requests, 3) if requests else None,
                     "bad": sum(p.bad for p in parts),
                     "round_rps": [round(p.rps) for p in parts]})
    return rows


def table(reports: list[dict]) -> str:
    lines = ["| db | code | workload | node req/s | Authserver req/s | floor req/s | "
             "Authserver ÷ node | Authserver ÷ floor | p99 ms node / Authserver | "
             "p99 ÷ node | CPU ms/req node / Authserver / floor | non-2xx |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for rep in reports:
        by = {(r["workload"], r["server"]): r for r in rep["rows"]}
        for workload in WORKLOADS:
            n, a, f = (by.get((workload, s)) for s in ("node", "authserver", "floor"))
            if not (n and a and f):
                continue
            ratio = lambda x, y: f"{x / y:.2f}x" if y else "-"  # noqa: E731
            lines.append(
                f"| {rep['db']} | {rep['label']} | {workload} | {n['rps']:.0f} | {a['rps']:.0f} | "
                f"{f['rps']:.0f} | {ratio(a['rps'], n['rps'])} | {ratio(a['rps'], f['rps'])} | "
                f"{n['p99_ms']:.1f} / {a['p99_ms']:.1f} | {ratio(a['p99_ms'], n['p99_ms'])} | "
                f"{n['cpu_ms_per_req']} / {a['cpu_ms_per_req']} / {f['cpu_ms_per_req']} | "
                f"{n['bad']} / {a['bad']} |")
    lines += granian_table(reports)
    lines.append("")
    for rep in reports:
        mib = {k: [round(v / 1024, 1) for v in vals] for k, vals in rep["rss_kib"].items()}
        lines.append(f"- {rep['db']} ({rep['label']}): RSS per worker after the run, MiB: "
                     + ", ".join(f"{k} {v}" for k, v in mib.items()))
    return "\n".join(lines)


def granian_table(reports: list[dict]) -> list[str]:
    """With --granian: the same workloads with Authserver and the floor under granian."""
    lines = ["", "Under granian (WSGI, same workers and threads) instead of gunicorn:", "",
             "| db | workload | Authserver req/s gunicorn / granian | ÷ node gunicorn / granian "
             "| floor ÷ node gunicorn / granian | p99 ÷ node granian "
             "| CPU ms/req Authserver gunicorn / granian, floor gunicorn / granian |",
             "|---|---|---|---|---|---|---|"]
    rows = 0
    for rep in reports:
        by = {(r["workload"], r["server"]): r for r in rep["rows"]}
        for workload in WORKLOADS:
            n, a, f, ag, fg = (by.get((workload, s)) for s in SERVERS + GRANIAN)
            if not (n and a and f and ag and fg and n["rps"]):
                continue
            rows += 1
            lines.append(
                f"| {rep['db']} | {workload} | {a['rps']:.0f} / {ag['rps']:.0f} "
                f"| {a['rps'] / n['rps']:.2f}x / {ag['rps'] / n['rps']:.2f}x "
                f"| {f['rps'] / n['rps']:.2f}x / {fg['rps'] / n['rps']:.2f}x "
                f"| {ag['p99_ms'] / n['p99_ms']:.2f}x "
                f"| {a['cpu_ms_per_req']} / {ag['cpu_ms_per_req']}, "
                f"{f['cpu_ms_per_req']} / {fg['cpu_ms_per_req']} |")
    return lines if rows else []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=5, help="seconds per run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--tree", type=Path, default=h.ROOT,
                        help="the Authserver checkout to measure (its wsgi.py, its package)")
    parser.add_argument("--label", default="this tree")
    parser.add_argument("--granian", action="store_true",
                        help="also Authserver and the floor under granian (pip install granian)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanups on kill
    tree = args.tree.resolve()
    h.ROOT = tree
    # That tree's recommended serving settings (this tree's when it has none).
    args.conf = next(p for p in (tree / "deploy" / "gunicorn.conf.py", h.GUNICORN_CONF)
                     if p.exists())
    os.environ["PYTHONPATH"] = str(tree)  # gunicorn and the CLI import that tree's package
    h.ensure_wrk()
    ensure_node()
    reports = [run_db(db, args) for db in args.db.split(",")]
    text = table(reports)
    print(text)
    run.RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    slug = "".join(c if c.isalnum() else "-" for c in args.label)
    for name in (f"peer-{slug}-{stamp}", f"peer-{slug}-latest"):
        (run.RESULTS / f"{name}.json").write_text(json.dumps(reports, indent=2) + "\n")
        (run.RESULTS / f"{name}.md").write_text(
            f"# Authserver, node-oidc-provider and the floor ({args.label})\n\n"
            f"{args.connections} connections, {args.rounds} rounds of {args.duration:g} s, "
            f"{h.GunicornSettings(conf=args.conf).describe()}.\n\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
