"""One builder for outbound connections: TLS verified against the system CAs (or the
configured CA file), timeouts always set. SMTP, upstream OpenID providers and back-channel
logout POSTs all get their TLS context or HTTP session here, never on their own.

A certificate that fails verification is counted (authserver_outbound_tls_rejected_total)
and reported in one line naming the reason and the peer.
"""
from __future__ import annotations

import ipaddress
import logging
import ssl
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping
from urllib.parse import urljoin, urlsplit

import requests

from .observability import TLS_REJECTED

log = logging.getLogger("authserver.outbound")

DEFAULT_TIMEOUT = 10.0


class CertificateRejected(ConnectionError):
    """The peer's certificate chain or host name failed verification; nothing was sent."""


class DowngradeRefused(requests.exceptions.RequestException):
    """An HTTPS response redirected to plain HTTP; the redirect was not followed."""


def ssl_context(cafile: str | None = None) -> ssl.SSLContext:
    """A client context that checks the certificate chain and the host name (ASVS 5 V12.3).

    With cafile, that file is the trust store (a private CA); otherwise the system CAs.
    """
    return ssl.create_default_context(cafile=cafile or None)


@contextmanager
def verified_tls(protocol: str, host: str, port: int) -> Iterator[None]:
    """Turn a failed certificate check inside the block into CertificateRejected, counted,
    with one line such as "certificate verify failed: self-signed certificate for h:587"."""
    try:
        yield
    except ssl.SSLCertVerificationError as exc:
        TLS_REJECTED.labels(protocol=protocol).inc()
        raise CertificateRejected(_reason(exc, host, port)) from exc


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses: traffic that never leaves the machine."""
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 from a dual-stack socket
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def check_settings(config: Mapping[str, Any]) -> None:
    """Fail at start-up when a CA file that is set cannot be loaded: a typo would otherwise
    turn into every outbound connection being refused, one failed try at a time."""
    for name, env in (("MAIL_CA_FILE", "AUTHSERVER_MAIL_CA_FILE"),
                      ("CA_BUNDLE", "AUTHSERVER_CA_BUNDLE")):
        path = config.get(name)
        if not path:
            continue
        try:
            if Path(path).is_dir():
                ssl.create_default_context(capath=path)
            else:
                ssl_context(path)
        except OSError as exc:  # missing, unreadable, or not PEM (ssl.SSLError)
            raise RuntimeError(f"{env}={path} cannot be loaded: {exc}") from exc


class _OutboundSession(requests.Session):
    """A requests session whose every request has a timeout unless the caller sets one, and
    whose TLS failures are logged in one line (and refused certificates counted)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def request(self, method, url, **kwargs):  # noqa: D102 (requests' own signature)
        kwargs.setdefault("timeout", self._timeout)
        try:
            return super().request(method, url, **kwargs)
        except requests.exceptions.SSLError as exc:
            if _verify_error(exc) is not None:
                TLS_REJECTED.labels(protocol="https").inc()
            parts = urlsplit(url)
            log.warning("outbound HTTPS refused: %s",
                        _reason(exc, parts.hostname or "", parts.port or 443))
            raise

    def get_redirect_target(self, resp):
        """requests' hook, refusing a redirect from HTTPS down to plain HTTP (it is called
        with allow_redirects=False too, so such a response always raises)."""
        target = super().get_redirect_target(resp)
        if target and resp.url.startswith("https:") and not _is_https(urljoin(resp.url, target)):
            origin = urlsplit(resp.url).netloc
            raise DowngradeRefused(f"not following a redirect from https://{origin} to plain HTTP",
                                   response=resp)
        return target


def http_session(config: Mapping[str, Any]) -> requests.Session:
    """An HTTPS client for outbound calls: verified TLS (CA_BUNDLE for a private CA), no
    redirect from HTTPS down to HTTP, the OUTBOUND_TIMEOUT on every request, and no proxies,
    CA bundle or netrc from the environment."""
    session = _OutboundSession(float(config.get("OUTBOUND_TIMEOUT") or DEFAULT_TIMEOUT))
    session.verify = config.get("CA_BUNDLE") or True
    session.trust_env = False
    session.headers["User-Agent"] = "Authserver"
    return session


def _is_https(url: str) -> bool:
    return urlsplit(url).scheme.lower() == "https"


def _verify_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error anywhere in exc's chain (requests nests it in
    urllib3's errors), or None for another TLS failure."""
    todo, seen = [exc], set()
    while todo:
        current = todo.pop()
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        linked = (current.__cause__, current.__context__, getattr(current, "reason", None),
                  *current.args)
        todo += [e for e in linked if isinstance(e, BaseException) and id(e) not in seen]
    return None


def _reason(exc: BaseException, host: str, port: int) -> str:
    """One line naming what failed and the peer."""
    found = _verify_error(exc)
    if found is not None:
        return f"certificate verify failed: {found.verify_message} for {host}:{port}"
    return f"{' '.join(str(exc).split())} for {host}:{port}"
