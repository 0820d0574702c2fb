"""Fixtures for the production-scale tests; the helpers they use are in prodkit.py."""
from __future__ import annotations

import secrets

import pytest

from prodkit import (REDIS_DB, Deployment, Gunicorn, deployment_env, free_port, pg_server_url,
                     scratch_database, seed, stop_all)


def redis_or_skip():
    import redis
    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("needs Redis on 127.0.0.1:6379 (the CI machine starts it; see .ci/run)")
    return client


@pytest.fixture(scope="session")
def pair(tmp_path_factory):
    """Servers A and B (gunicorn, one worker of 8 threads each) sharing one PostgreSQL database,
    one Redis for rate limits, one keys dir, one secret and one issuer: A's URL.

    Shared by test_multiprocess.py and test_races_postgres.py (starting two servers is the
    slow part). Logins are limited to 3 a minute per client address; a trusted proxy
    (ProxyFix, one hop) lets each test speak from its own address through X-Forwarded-For.
    """
    rds = redis_or_skip()
    prefix = "authserver-prodtest-" + secrets.token_hex(4)
    root = tmp_path_factory.mktemp("pair")
    port_a, port_b = free_port(), free_port()
    with scratch_database(pg_server_url()) as db_url:
        env = deployment_env(
            db_url, root, f"http://127.0.0.1:{port_a}",
            AUTHSERVER_RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:6379/{REDIS_DB}",
            AUTHSERVER_RATELIMIT_KEY_PREFIX=prefix, AUTHSERVER_RATELIMIT_LOGIN="3 per minute",
            AUTHSERVER_RATELIMIT_FORGOT="100 per minute", AUTHSERVER_PROXY_FIX_X_FOR="1",
            AUTHSERVER_PASSWORD_HASH_CONCURRENCY="8",
            AUTHSERVER_METRICS_ENABLED="true")
        dep = Deployment(env, db_url, root)
        servers = [Gunicorn(name, env, port, root, workers=1, threads=8)
                   for name, port in (("A", port_a), ("B", port_b))]
        try:
            seed(dep, servers=servers)
            yield dep
        finally:
            stop_all(servers)
            for key in rds.scan_iter(match=f"*{prefix}*", count=500):
                rds.delete(key)
