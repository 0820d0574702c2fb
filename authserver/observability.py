"""Prometheus metrics and JSON log lines with the request id; never a secret in either."""
from __future__ import annotations

import json
import logging
import os
import time

from flask import Flask, g, has_request_context, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter("authserver_http_requests_total", "HTTP requests by endpoint and status",
                   ["endpoint", "method", "status"], registry=REGISTRY)
LATENCY = Histogram("authserver_http_request_seconds", "Request latency by endpoint",
                    ["endpoint"], registry=REGISTRY,
                    buckets=(.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))
TOKENS = Counter("authserver_tokens_issued_total", "Tokens issued by grant type", ["grant_type"],
                 registry=REGISTRY)
EVENTS = Counter("authserver_security_events_total",
                 "Security events (login_failed, refresh_reuse, reset_requested, ...)", ["name"],
                 registry=REGISTRY)
TLS_REJECTED = Counter("authserver_outbound_tls_rejected_total",
                       "Outbound TLS connections refused: the peer's certificate or host name "
                       "failed verification", ["protocol"], registry=REGISTRY)


def exposition() -> bytes:
    """The Prometheus text for /metrics. Under gunicorn with several workers
    (PROMETHEUS_MULTIPROC_DIR set, see deploy/gunicorn.conf.py) every worker writes its
    values to files in that folder and a scrape adds them up, whichever worker answers."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def count_event(name: str) -> None:
    EVENTS.labels(name=name).inc()


GRANT_LABELS = ("authorization_code", "refresh_token", "client_credentials", "other")
_TOKEN_CHILDREN: dict = {}  # grant label -> its child, looked up once per process


def count_token(grant_type: str) -> None:
    label = grant_type if grant_type in GRANT_LABELS else "other"
    child = _TOKEN_CHILDREN.get(label)
    if child is None:
        child = _TOKEN_CHILDREN[label] = TOKENS.labels(grant_type=label)
    child.inc()


def init_request_metrics(app: Flask) -> None:
    """Time every request; label by endpoint name (bounded), never by raw path."""
    @app.before_request
    def _start_timer():
        g.request_started = time.perf_counter()

    children: dict[tuple, tuple] = {}  # label lookups once per (endpoint, method, status)

    @app.after_request
    def _observe(resp):
        endpoint = request.endpoint or "unmatched"
        labels = (endpoint, request.method, resp.status_code)
        pair = children.get(labels)
        if pair is None:
            pair = children[labels] = (
                LATENCY.labels(endpoint=endpoint),
                REQUESTS.labels(endpoint=endpoint, method=labels[1], status=str(labels[2])))
        started = g.get("request_started")
        if started is not None:
            pair[0].observe(time.perf_counter() - started)
        pair[1].inc()
        if endpoint == "oauth.token" and resp.status_code == 200:
            count_token(request.form.get("grant_type", ""))
        return resp


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
                "logger": record.name}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update({k: v for k, v in fields.items() if k not in line})
        else:
            line["message"] = record.getMessage()
        if has_request_context():
            line["request_id"] = g.get("request_id")
            line["path"] = request.path
        if record.exc_info:
            line["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            # The stack, for whoever fixes it; SQL parameter values are hidden by the engine
            # (hide_parameters), so a failed statement does not put row values in the log.
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def init_logging(app: Flask) -> None:
    """JSON lines on stderr for the authserver loggers (left alone under tests)."""
    logger = logging.getLogger("authserver")
    logger.setLevel(logging.INFO)
    if app.testing or any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.propagate = False
