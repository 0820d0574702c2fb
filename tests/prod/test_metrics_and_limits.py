"""/metrics (Prometheus, behind METRICS_ENABLED) and the per-address rate limits.

In-process, on whichever database the suite runs on. The counters live in one registry per
process, so each test compares before and after rather than absolute values.
"""
from __future__ import annotations

import socket

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support import PASSWORD, AuthActions, make_client, make_user


@pytest.fixture
def settings(settings, request):
    """Metrics on; a test changes more with @pytest.mark.parametrize("settings", ..., indirect)."""
    settings["METRICS_ENABLED"] = True
    settings.update(getattr(request, "param", {}))
    return settings


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens here once the socket closes


def scrape(client) -> dict:
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    values = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def value(values: dict, metric: str, /, **labels) -> float:
    return values.get((metric, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize("settings", [{"METRICS_ENABLED": False}], indirect=True)
def test_metrics_is_404_unless_enabled(client):
    assert client.get("/metrics").status_code == 404


def test_metrics_count_requests_tokens_login_failures_and_queued_mail(app, client):
    make_user(app)
    cid, secret = make_client(app, "Service", grant_types=["client_credentials"],
                              scope="profile", redirect_uris=())
    before = scrape(client)

    token = client.post("/token", data={"grant_type": "client_credentials"},
                        auth=(cid, secret))
    assert token.status_code == 200
    AuthActions(client).login("alice", "not-" + PASSWORD)
    csrf = AuthActions(client).csrf("/forgot-password")
    assert client.post("/forgot-password", data={"username": "alice",
                                                 "csrf_token": csrf}).status_code == 303
    after = scrape(client)

    def grew(metric, /, **labels):
        return value(after, metric, **labels) - value(before, metric, **labels) == 1

    assert grew("authserver_http_requests_total", endpoint="oauth.token", method="POST",
                status="200")
    assert grew("authserver_http_request_seconds_count", endpoint="oauth.token")
    assert grew("authserver_tokens_issued_total", grant_type="client_credentials")
    assert grew("authserver_security_events_total", name="login_failed")
    assert grew("authserver_security_events_total", name="reset_requested")
    assert value(after, "authserver_mail_messages", state="queued") >= 1
    assert value(after, "authserver_mail_oldest_queued_seconds") >= 0
    text = client.get("/metrics").get_data(as_text=True)
    assert secret not in text and PASSWORD not in text and "alice" not in text


@pytest.mark.parametrize("settings", [{"RATELIMIT_ENABLED": True, "RATELIMIT_LOGIN": "2 per minute",
                                       "RATELIMIT_STORAGE_URI": "memory://"}], indirect=True)
def test_login_limit_answers_429_with_retry_after(client):
    auth = AuthActions(client)
    answers = [auth.login("mallory", "wrong-password") for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert int(answers[-1].headers["Retry-After"]) > 0
    assert "Too many requests" in answers[-1].get_data(as_text=True)


@pytest.mark.parametrize("settings", [{"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI":
                                       f"redis://127.0.0.1:{dead_port()}/0"}], indirect=True)
def test_a_redis_outage_leaves_sign_in_working(app, client):
    """Limits fail open (RATELIMIT_SWALLOW_ERRORS) rather than turning every login into a 500;
    the database's login throttle still holds."""
    make_user(app)
    assert AuthActions(client).login("alice", PASSWORD).status_code == 303
