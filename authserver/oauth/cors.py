"""Browser apps (SPEC section 7): `/token`, `/userinfo` and `/revoke` answer cross-origin
requests from a client's web origins, never `*` and never with credentials (no cookie is
read there). Discovery and JWKS answer any origin (discovery.py).

Pure decisions first (what a web origin is, which origins a client has, the headers of an
answer and of a preflight); then the thin wiring, `init_app`, which finds the client of a
request and attaches the decided headers.

A preflight (`OPTIONS`) carries no client: it is allowed when its origin is a web origin of
ANY registered client (a set cached per process, like clients themselves). The answer that
follows is exposed only when the origin belongs to the request's own client. A response
whose client cannot be known (no or unknown `client_id`, an invalid access token) is an
error; it is exposed to the same set as a preflight, so the app can read why it failed.
"""
from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Collection, Iterable
from urllib.parse import unquote, urlsplit

from flask import Flask, Request, Response, current_app, request
from werkzeug.exceptions import HTTPException

from ..tokens.jwt_access import AccessTokenInvalid, decode_access_token

# Path -> the methods a browser app may use there.
METHODS = {"/token": ("POST",), "/revoke": ("POST",), "/userinfo": ("GET", "POST")}
ALLOW_HEADERS = "Authorization, Content-Type"
EXPOSE_HEADERS = "WWW-Authenticate, Retry-After"
MAX_AGE = 600  # seconds a browser may reuse a preflight (Chromium caps it at 7200)
MISS_RELOAD_INTERVAL = 1.0  # seconds between reloads of every client's origins on a miss
DEFAULT_PORTS = {"http": 80, "https": 443}


class OriginInvalid(ValueError):
    """Not a web origin: scheme://host[:port], https (http only for a loopback host)."""


# --- pure decisions ----------------------------------------------------------------------------

def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serialize(scheme: str, host: str, port: int | None) -> str:
    """The origin as a browser writes it in `Origin` (RFC 6454 section 6.2)."""
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def origin_of(uri: str) -> str | None:
    """The origin of an http(s) URL (a redirect URI), or None for any other URI."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in DEFAULT_PORTS or not host:
        return None
    return _serialize(scheme, host, port)


def parse_web_origin(text: str) -> str:
    """A web origin as registered by an administrator, normalised; OriginInvalid otherwise.

    Only scheme://host[:port]: no path (not even "/"), query, fragment or user info; https,
    or http for a loopback host (development). Hosts in ASCII (punycode), as browsers send."""
    if not isinstance(text, str) or not text or len(text) > 255 or not text.isascii():
        raise OriginInvalid(f"Web origin must be scheme://host[:port]: {text!r}")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise OriginInvalid(f"Web origin has an invalid port: {text}") from exc
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in DEFAULT_PORTS or not host or "@" in parts.netloc or \
            any(c in text for c in " \t\r\n\\"):
        raise OriginInvalid(f"Web origin must be scheme://host[:port]: {text}")
    if parts.path or parts.query or parts.fragment or text.endswith(("?", "#")):
        raise OriginInvalid(f"Web origin must not have a path, query or fragment "
                            f"(no trailing /): {text}")
    if scheme == "http" and not _is_loopback(host):
        raise OriginInvalid(f"Web origin must use https (http only for localhost): {text}")
    return _serialize(scheme, host, port)


def client_web_origins(redirect_uris: Iterable[str], web_origins: list[str] | None) -> list[str]:
    """A client's web origins: those registered, or by default the origins of its redirect
    URIs (custom-scheme redirect URIs of native apps have none)."""
    if web_origins is not None:
        return list(web_origins)
    found: list[str] = []
    for uri in redirect_uris:
        origin = origin_of(uri)
        if origin and origin not in found:
            found.append(origin)
    return found


def answer_headers(origin: str | None, allowed: Collection[str]) -> dict[str, str]:
    """Headers that expose an answer to `origin` when it is allowed (never `*`, never
    credentials); none otherwise, so the browser hides the answer from the page."""
    if not origin or origin not in allowed:
        return {}
    return {"Access-Control-Allow-Origin": origin,
            "Access-Control-Expose-Headers": EXPOSE_HEADERS}


def preflight_headers(origin: str | None, allowed: Collection[str],
                      methods: Iterable[str]) -> dict[str, str]:
    """The answer to a preflight (Fetch standard, CORS protocol): which methods and request
    headers the page may use and for how long, or nothing, which makes the browser refuse."""
    if not origin or origin not in allowed:
        return {}
    return {"Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ", ".join(methods),
            "Access-Control-Allow-Headers": ALLOW_HEADERS,
            "Access-Control-Max-Age": str(MAX_AGE)}


def client_id_of_request(req: Request) -> str | None:
    """The client a token or revocation request names: HTTP Basic (RFC 6749 section 2.3.1,
    form-urlencoded) first, as Authlib authenticates it, else the body's `client_id`."""
    auth = req.headers.get("Authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            basic = req.authorization
        except (ValueError, UnicodeDecodeError):
            basic = None
        return unquote(basic.username) if basic and basic.username else None
    return _form_value(req, "client_id")


def client_id_of_bearer(req: Request) -> str | None:
    """The client of the access token sent to /userinfo (RFC 6750 sections 2.1 and 2.2),
    when the token is one this issuer signed and still accepts."""
    scheme, _, raw = req.headers.get("Authorization", "").partition(" ")
    if not scheme and req.method == "POST" and \
            req.mimetype == "application/x-www-form-urlencoded":
        scheme, raw = "bearer", _form_value(req, "access_token") or ""
    if scheme.lower() != "bearer" or not raw.strip():
        return None
    try:
        return decode_access_token(raw.strip()).get("client_id")
    except AccessTokenInvalid:
        return None


def _form_value(req: Request, name: str) -> str | None:
    """A form field, or None when the body was refused (413: too large) and names nothing."""
    try:
        return req.form.get(name) or None
    except HTTPException:
        return None


# --- wiring -------------------------------------------------------------------------------------

class Cors:
    """The per-app lookups: a client by client_id, and every client's web origins."""

    def __init__(self, find_client: Callable[[str], object | None],
                 all_origins: Callable[[], Iterable[str]]):
        self.find_client = find_client
        self.all_origins = all_origins
        self._any: tuple[float, float, frozenset[str]] = (0.0, 0.0, frozenset())

    def any_client_origins(self, origin: str | None) -> frozenset[str]:
        """The union of all clients' web origins, cached CLIENT_CACHE_TTL seconds.

        An origin missing from the cache reloads it at most once a MISS_RELOAD_INTERVAL, so
        a client registered by another process works at once (as query_client_cached does
        for a new client), and requests from unknown origins cannot hammer the database."""
        loaded, expires, origins = self._any
        now = time.monotonic()
        stale = expires <= now or (origin not in origins and now - loaded >= MISS_RELOAD_INTERVAL)
        if stale:
            origins = frozenset(self.all_origins())
            self._any = (now, now + float(current_app.config["CLIENT_CACHE_TTL"]), origins)
        return origins

    def allowed_for(self, req: Request) -> Collection[str]:
        """The origins that may read the answer to this request."""
        if req.path == "/userinfo":
            client_id = client_id_of_bearer(req)
        else:
            client_id = client_id_of_request(req)
        client = self.find_client(client_id) if client_id else None
        if client is None:
            return self.any_client_origins(req.headers.get("Origin"))
        return client_web_origins(client.redirect_uris, client.web_origins)


def init_app(app: Flask, *, find_client, all_origins) -> None:
    """Answer preflights before any view runs, and add the decided headers to every answer
    (errors included) of the CORS endpoints."""
    app.extensions["authserver.cors"] = Cors(find_client, all_origins)
    app.before_request(_preflight)
    app.after_request(_expose)


def _preflight() -> Response | None:
    methods = METHODS.get(request.path)
    if methods is None or request.method != "OPTIONS":
        return None
    cors: Cors = current_app.extensions["authserver.cors"]
    resp = Response(status=204)
    del resp.headers["Content-Type"]
    resp.headers["Allow"] = ", ".join((*methods, "OPTIONS"))
    origin = request.headers.get("Origin")
    resp.headers.update(preflight_headers(origin, cors.any_client_origins(origin), methods))
    return resp


def _expose(resp: Response) -> Response:
    if request.path not in METHODS:
        return resp
    # The header itself, not resp.vary (a parsed HeaderSet, rebuilt on every token answer).
    vary = resp.headers.get("Vary")
    if not vary:
        resp.headers["Vary"] = "Origin"
    elif "origin" not in vary.lower():
        resp.headers["Vary"] = f"{vary}, Origin"
    origin = request.headers.get("Origin")
    if origin and request.method != "OPTIONS":
        cors: Cors = current_app.extensions["authserver.cors"]
        resp.headers.update(answer_headers(origin, cors.allowed_for(request)))
    return resp
