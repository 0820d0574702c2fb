"""Limits at /token stop abuse, not healthy load (issue 14): valid requests are never limited
by address with the default settings; failed client authentication is limited per address
and per client_id, answered 429 with an RFC 6749 section 5.2 JSON body and Retry-After."""
from __future__ import annotations

from datetime import timedelta

import pytest

from support import make_client


@pytest.fixture
def settings(settings, request):
    """The shipped limits (the suite's base settings turn rate limiting off)."""
    settings.update({"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": "memory://"})
    settings.update(getattr(request, "param", {}))
    return settings


@pytest.fixture
def service(app):
    return make_client(app, "Service", grant_types=["client_credentials"], scope="profile",
                       redirect_uris=())


def token(client, creds, address="192.0.2.10"):
    return client.post("/token", data={"grant_type": "client_credentials"}, auth=creds,
                       environ_base={"REMOTE_ADDR": address})


def test_two_thousand_valid_requests_from_one_address_are_all_answered(client, service):
    statuses = [token(client, service).status_code for _ in range(2000)]
    assert statuses.count(200) == 2000


def test_failed_client_authentication_from_one_address_is_limited(client, service, frozen):
    cid, _ = service
    wrong = [token(client, (cid, "not-the-secret")) for _ in range(30)]
    assert {r.status_code for r in wrong} == {401}
    limited = token(client, (cid, "not-the-secret"))
    assert limited.status_code == 429
    assert limited.json["error"] == "slow_down" and limited.json["error_description"]
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.headers["Cache-Control"] == "no-store"
    # The address is held off for the window, even with the right secret ...
    assert token(client, service).status_code == 429
    # ... while the client works from anywhere else, and from here after the window.
    assert token(client, service, address="192.0.2.99").status_code == 200
    frozen.tick(timedelta(seconds=61))
    assert token(client, service).status_code == 200


@pytest.mark.parametrize("settings", [{"RATELIMIT_TOKEN_AUTH_FAILURES_CLIENT": "5 per minute"}],
                         indirect=True)
def test_failures_for_one_client_id_slow_down_without_locking_the_client_out(client, service):
    cid, _ = service
    answers = [token(client, (cid, "guess"), address=f"198.51.100.{i}") for i in range(1, 8)]
    assert [r.status_code for r in answers] == [401] * 5 + [429] * 2
    assert answers[-1].json["error"] == "slow_down"
    assert token(client, service, address="198.51.100.50").status_code == 200


@pytest.mark.parametrize("settings", [{"RATELIMIT_TOKEN_PER_CLIENT": "3 per minute"}],
                         indirect=True)
def test_an_optional_quota_per_client(client, service):
    statuses = [token(client, service, address=f"203.0.113.{i}").status_code
                for i in range(1, 6)]
    assert statuses == [200, 200, 200, 429, 429]


@pytest.mark.parametrize("settings", [{"RATELIMIT_TOKEN": "3 per minute"}], indirect=True)
def test_a_per_address_limit_on_every_request_can_still_be_set(client, service):
    statuses = [token(client, service).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
