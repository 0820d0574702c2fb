"""/metrics under gunicorn with two workers (deploy/gunicorn.conf.py, prometheus-client's
multiprocess mode): a scrape adds up every worker's counts, whichever worker answers it,
and keeps a worker's counts after it exits."""
from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prodkit import (
    Deployment,
    Gunicorn,
    client_credentials,
    deployment_env,
    free_port,
    pg_server_url,
    scratch_database,
    seed,
    stop_all,
)
from prometheus_client.parser import text_string_to_metric_families

pytestmark = [pytest.mark.slow]


@pytest.fixture
def two_workers(tmp_path):
    """One gunicorn with 2 sync workers (one request at a time each, so a burst of
    concurrent requests is spread over both) and its own PROMETHEUS_MULTIPROC_DIR."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left over from an earlier run")
    port = free_port()
    server_url = pg_server_url()
    with scratch_database(server_url) if server_url else _sqlite(tmp_path) as db_url:
        env = deployment_env(db_url, tmp_path, f"http://127.0.0.1:{port}",
                             AUTHSERVER_METRICS_ENABLED="true")
        dep = Deployment(env, db_url, tmp_path)  # the CLI runs without the metrics folder
        server = Gunicorn("metrics", {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
                          port, tmp_path, workers=2, threads=1,
                          extra=("-c", "deploy/gunicorn.conf.py", "-k", "sync"))
        try:
            seed(dep, servers=[server])
            yield dep, server, metrics_dir
        finally:
            stop_all([server])


class _sqlite:
    def __init__(self, root):
        self.url = f"sqlite:///{root}/authserver.db"

    def __enter__(self):
        return self.url

    def __exit__(self, *exc):
        return False


def scrape(base: str) -> dict:
    text = requests.get(base + "/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def issued(values: dict) -> float:
    return values.get(("authserver_tokens_issued_total", (("grant_type", "client_credentials"),)),
                      0.0)


def token_200s(values: dict) -> float:
    return values.get(("authserver_http_requests_total",
                       (("endpoint", "oauth.token"), ("method", "POST"), ("status", "200"))), 0.0)


def burst(dep: Deployment, base: str, n: int) -> None:
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: client_credentials(base, dep).status_code, range(n)))
    assert codes == [200] * n


def worker_pids(metrics_dir) -> set[int]:
    return {int(m.group(1)) for name in os.listdir(metrics_dir)
            if (m := re.fullmatch(r"counter_(\d+)\.db", name))}


def test_counts_from_both_workers_add_up_in_every_scrape(two_workers):
    dep, server, metrics_dir = two_workers
    assert 999999 not in worker_pids(metrics_dir)  # emptied at start
    burst(dep, server.url, 60)
    pids = worker_pids(metrics_dir)
    assert len(pids) == 2, pids  # both workers served some of the burst
    for _ in range(4):  # whichever worker answers the scrape
        values = scrape(server.url)
        assert issued(values) == 60 and token_200s(values) == 60
    mail = [k for k in values if k[0] == "authserver_mail_messages"]
    assert mail and all("pid" not in dict(labels) for _, labels in mail)

    os.kill(next(iter(pids)), signal.SIGTERM)  # gunicorn starts another worker
    sent, deadline = 60, time.monotonic() + 20
    while not worker_pids(metrics_dir) - pids and time.monotonic() < deadline:
        time.sleep(0.2)
        burst(dep, server.url, 8)
        sent += 8
    assert worker_pids(metrics_dir) - pids, "no new worker served a request"
    values = scrape(server.url)  # the exited worker's counts are still there
    assert issued(values) == sent and token_200s(values) == sent
