"""One builder for outbound connections: TLS verified against the system CAs (or the
configured CA file), timeouts always set. SMTP, upstream OpenID providers and back-channel
logout POSTs all get their TLS context or HTTP session here, never on their own."""
from __future__ import annotations

import ssl
from typing import Any, Mapping

import requests

DEFAULT_TIMEOUT = 10.0


def ssl_context(cafile: str | None = None) -> ssl.SSLContext:
    """A client context that checks the certificate chain and the host name (ASVS 5 V12.3).

    With cafile, that file is the trust store (a private CA); otherwise the system CAs.
    """
    return ssl.create_default_context(cafile=cafile or None)


class _TimeoutSession(requests.Session):
    """A requests session whose every request has a timeout unless the caller sets one."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def request(self, method, url, **kwargs):  # noqa: D102 (requests' own signature)
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, **kwargs)


def http_session(config: Mapping[str, Any]) -> requests.Session:
    """An HTTPS client for outbound calls: verified TLS (CA_BUNDLE for a private CA),
    the OUTBOUND_TIMEOUT on every request, no proxies or netrc from the environment."""
    session = _TimeoutSession(float(config.get("OUTBOUND_TIMEOUT") or DEFAULT_TIMEOUT))
    session.verify = config.get("CA_BUNDLE") or True
    session.trust_env = False
    session.headers["User-Agent"] = "Authserver"
    return session
