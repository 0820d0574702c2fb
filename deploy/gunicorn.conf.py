"""Recommended gunicorn settings: `gunicorn -c deploy/gunicorn.conf.py wsgi:app`.

The README, deploy/authserver.service, the benchmarks under bench/ and the production-shaped
tests all start the server with this file. Each value can be overridden from the environment
(GUNICORN_BIND, GUNICORN_WORKERS, GUNICORN_THREADS) or on the command line.
"""
import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Threads let token, discovery and JWKS requests run while another thread of the same
# worker waits on a password hash or the database.
worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count()))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
keepalive = 5
timeout = 30
graceful_timeout = 20
