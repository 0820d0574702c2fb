"""Recommended gunicorn settings: `gunicorn -c deploy/gunicorn.conf.py wsgi:app`.

docs/production.md, deploy/authserver.service, the benchmarks under bench/ and the production-shaped
tests all start the server with this file. Each value can be overridden from the environment
(GUNICORN_BIND, GUNICORN_WORKERS, GUNICORN_THREADS) or on the command line. Sizing, and what
the numbers below were measured with: docs/capacity.md.
"""
import os
import shutil
import tempfile

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# The cores this process may run on (a cpuset or taskset counts; a container's CPU quota does
# not: set GUNICORN_WORKERS there).
cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
# One process per core: tokens are RSA/ECDSA signatures and sign-ins argon2id, both CPU.
workers = int(os.environ.get("GUNICORN_WORKERS", cores))
# Threads let token, discovery and JWKS requests run while other threads of the same worker
# hash a password (argon2 releases the GIL), wait for a hashing slot, or wait on the database.
# There are more threads than hashing slots on purpose: a sign-in flood can hold at most the
# slots and the short wait for one, and the remaining threads keep serving tokens.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 16))

# glibc gives each thread that allocates under contention a heap of its own (up to 8 per
# core) and keeps what it freed there: with 16 threads a worker grew to 290-390 MiB after a
# benchmark against 110 MiB with 4. Two heaps per process are plenty here (Python's own
# allocator serves small objects under the GIL); set before the workers fork, so they inherit
# it. MALLOC_ARENA_MAX in the environment wins, as with glibc itself.
def _limit_malloc_arenas(arenas: int = 2) -> None:
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, macOS): nothing to do
        return
    M_ARENA_MAX = -8
    libc.mallopt(M_ARENA_MAX, arenas)


_limit_malloc_arenas()
keepalive = 5
timeout = 30
graceful_timeout = 20

# About one concurrent password hash per core across the machine: cores / workers per
# process (the workers inherit this environment). An explicit setting wins.
os.environ.setdefault("AUTHSERVER_PASSWORD_HASH_CONCURRENCY", str(max(1, cores // workers)))

# /metrics with several workers: each worker writes its counters to files in
# PROMETHEUS_MULTIPROC_DIR and a scrape adds them up (prometheus-client's multiprocess mode).
# Set before prometheus_client is imported anywhere, so the forked workers inherit it; a
# folder of our own is made when none is given, and emptied at start either way.
_own_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="authserver-metrics-")


def on_starting(server):
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.unlink(os.path.join(folder, name))


def child_exit(server, worker):
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
