"""Limits at the token, revocation and introspection endpoints: failed client authentication
per address and per client_id, and an optional quota of requests per client. Successful
requests are never limited by address (a backend, a NAT or a proxy sends healthy load from
one address). See docs/limits.md.

- Per address (RATELIMIT_TOKEN_AUTH_FAILURES_ADDRESS): over it, every request from that
  address is answered 429 before its credentials are checked.
- Per client_id (RATELIMIT_TOKEN_AUTH_FAILURES_CLIENT): over it, a *failed* authentication
  for that client_id is answered 429 (RFC 8628 section 3.5's `slow_down`) instead of 401,
  telling a misconfigured client to back off; the right secret still works, so nobody who
  only knows a client_id can lock the client out.
- Per client (RATELIMIT_TOKEN_PER_CLIENT, off by default): a quota of authenticated requests.
- Per address, every /token request (RATELIMIT_TOKEN, off by default): counted here rather
  than by a Flask-Limiter decorator, so a /token request with the limit off evaluates nothing.
"""
from __future__ import annotations

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from flask import current_app

from .. import counters
from ..accounts.throttle import client_address

FAILURES_ADDRESS = "RATELIMIT_TOKEN_AUTH_FAILURES_ADDRESS"
FAILURES_CLIENT = "RATELIMIT_TOKEN_AUTH_FAILURES_CLIENT"
PER_CLIENT = "RATELIMIT_TOKEN_PER_CLIENT"
EVERY_REQUEST = "RATELIMIT_TOKEN"


class SlowDown(OAuth2Error):
    """429 with an RFC 6749 section 5.2 JSON body and Retry-After."""

    error = "slow_down"
    status_code = 429

    def __init__(self, retry_after: int, description: str):
        super().__init__(description=description)
        self.retry_after = retry_after

    def get_headers(self):
        return [*super().get_headers(), ("Retry-After", str(self.retry_after))]


def check_address(endpoint: str) -> None:
    """Raise SlowDown while this address is over its failed-authentication limit, or, at the
    token endpoint, over RATELIMIT_TOKEN (which counts every request)."""
    address = client_address()
    wait = counters.retry_after(FAILURES_ADDRESS, address)
    if wait:
        raise SlowDown(wait, "Too many failed client authentications from this address. "
                             "Wait and try again.")
    if endpoint == "token" and current_app.config.get(EVERY_REQUEST):
        wait = counters.retry_after(EVERY_REQUEST, address)
        if wait:
            raise SlowDown(wait, "Too many token requests from this address. "
                                 "Wait and try again.")
        counters.hit(EVERY_REQUEST, address)


def record_failure(request) -> None:
    """Count a failed authentication; raise SlowDown when the client_id is over its limit."""
    counters.hit(FAILURES_ADDRESS, client_address())
    client_id = presented_client_id(request)
    if not client_id:
        return
    wait = counters.retry_after(FAILURES_CLIENT, client_id)
    if wait:
        raise SlowDown(wait, "Too many failed authentications for this client. Check the "
                             "client secret, wait and try again.")
    counters.hit(FAILURES_CLIENT, client_id)


def count_request(client_id: str) -> None:
    """The optional per-client quota of authenticated requests."""
    wait = counters.retry_after(PER_CLIENT, client_id)
    if wait:
        raise SlowDown(wait, "This client is over its request quota. Wait and try again.")
    counters.hit(PER_CLIENT, client_id)


def presented_client_id(request) -> str:
    """The client_id a request claims (Basic header, else the form), at most 128 characters."""
    try:
        client_id, _ = extract_basic_authorization(request.headers)
    except (UnicodeDecodeError, ValueError):
        client_id = None
    if not client_id:
        client_id = request.payload.client_id if request.payload else None
    return str(client_id or "")[:128]
