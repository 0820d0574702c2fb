"""OpenID Provider metadata (OIDC Discovery 1.0, RFC 8414) and the JWKS, served from memory.

`WellKnown` answers GET and HEAD on both paths in front of Flask (no request context, no
hooks): precomputed bytes with a strong `ETag`, `Cache-Control` and `304 Not Modified` for a
matching `If-None-Match`. The JWKS bytes are rebuilt when the published key ids change (the
keyring reloads, a rotation publishes or retires a key). Other methods fall through to the
blueprint below, which serves the same bodies through Flask.
"""
from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable, Mapping

from flask import Blueprint, Flask, Response, current_app, json

from .. import clock
from ..observability import LATENCY, REQUESTS
from ..tokens import keyring
from .services import SCOPES

bp = Blueprint("discovery", __name__)


def provider_metadata(issuer: str) -> dict:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "revocation_endpoint": f"{issuer}/revoke",
        "introspection_endpoint": f"{issuer}/introspect",
        "end_session_endpoint": f"{issuer}/logout",
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "userinfo_signing_alg_values_supported": ["none"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post",
                                                  "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic",
                                                       "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic",
                                                          "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash",
                             "sid", "amr", "name", "preferred_username", "email"],
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
    }


@bp.get("/.well-known/openid-configuration")
def openid_configuration():
    cache = current_app.extensions.setdefault("authserver.discovery", {})
    body = cache.get("body")
    if body is None:
        body = cache["body"] = json.dumps(provider_metadata(current_app.config["ISSUER"]))
    return _json(body, max_age=3600)


@bp.get("/.well-known/jwks.json")
def jwks():
    body = json.dumps(keyring.current_keyring().public_jwks(clock.now()))
    return _json(body, max_age=300)


def _json(body: str, max_age: int) -> Response:
    resp = Response(body, mimetype="application/json")
    resp.headers["Cache-Control"] = f"public, max-age={max_age}"
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp


DISCOVERY_PATH, JWKS_PATH = "/.well-known/openid-configuration", "/.well-known/jwks.json"
DISCOVERY_MAX_AGE, JWKS_MAX_AGE = 3600, 300


class _Body:
    """One answer's bytes and headers, built once; `key` says what it was built from."""

    __slots__ = ("body", "etag", "key", "not_modified_headers", "ok_headers")

    def __init__(self, key, body: bytes, max_age: int, extra: Mapping[str, str]):
        self.key, self.body = key, body
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        common = [("Cache-Control", f"public, max-age={max_age}"), ("ETag", self.etag),
                  ("Access-Control-Allow-Origin", "*"), *extra.items()]
        self.ok_headers = [("Content-Type", "application/json"),
                           ("Content-Length", str(len(body))), *common]
        self.not_modified_headers = common

    def matches(self, if_none_match: str) -> bool:
        """RFC 9110 section 13.1.2: weak comparison over a list of entity tags, or `*`."""
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or self.etag in tags


class WellKnown:
    """WSGI middleware serving discovery and the JWKS as bytes before Flask runs."""

    def __init__(self, app: Flask, wsgi_app: Callable, headers: Mapping[str, str]):
        self.app, self.wsgi_app, self.headers = app, wsgi_app, dict(headers)
        self._discovery: _Body | None = None
        self._jwks: _Body | None = None
        self._metrics = {}

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO"), environ.get("REQUEST_METHOD")
        if method not in ("GET", "HEAD") or path not in (DISCOVERY_PATH, JWKS_PATH):
            return self.wsgi_app(environ, start_response)
        started = time.perf_counter()
        answer = self.discovery() if path == DISCOVERY_PATH else self.jwks()
        request_id = environ.get("HTTP_X_REQUEST_ID", "")[:64] or uuid.uuid4().hex
        if answer.matches(environ.get("HTTP_IF_NONE_MATCH", "")):
            status, headers, body = "304 Not Modified", answer.not_modified_headers, b""
        else:
            status, headers, body = "200 OK", answer.ok_headers, answer.body
        start_response(status, [*headers, ("X-Request-Id", request_id)])
        self._observe(path, method, status[:3], started)
        return [] if method == "HEAD" else [body] if body else []

    def discovery(self) -> _Body:
        answer = self._discovery
        if answer is None:
            with self.app.app_context():
                body = json.dumps(provider_metadata(self.app.config["ISSUER"])).encode()
            answer = self._discovery = _Body(None, body, DISCOVERY_MAX_AGE, self.headers)
        return answer

    def jwks(self) -> _Body:
        try:
            keys = keyring.keyring_for(self.app).public_jwks(clock.now())
        except RuntimeError:  # a keyring that reloads through the app (its database)
            with self.app.app_context():
                keys = keyring.keyring_for(self.app).public_jwks(clock.now())
        kids = tuple(key.get("kid") for key in keys["keys"])
        answer = self._jwks
        if answer is None or answer.key != kids:
            answer = self._jwks = _Body(kids, json.dumps(keys).encode(), JWKS_MAX_AGE,
                                        self.headers)
        return answer

    def _observe(self, path: str, method: str, status: str, started: float) -> None:
        """The same request metrics the Flask hooks record, children looked up once."""
        children = self._metrics.get((path, method, status))
        if children is None:
            endpoint = "discovery.openid_configuration" if path == DISCOVERY_PATH \
                else "discovery.jwks"
            children = self._metrics[(path, method, status)] = (
                LATENCY.labels(endpoint=endpoint),
                REQUESTS.labels(endpoint=endpoint, method=method, status=status))
        children[0].observe(time.perf_counter() - started)
        children[1].inc()


def serve_well_known(app: Flask, headers: Mapping[str, str]) -> None:
    """Put WellKnown in front of the app's WSGI callable (outermost, before ProxyFix)."""
    app.wsgi_app = WellKnown(app, app.wsgi_app, headers)
