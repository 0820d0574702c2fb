"""The OpenID Connect client side of upstream sign-in (SPEC section 10).

`start` keeps state, nonce and the PKCE verifier server-side (table upstream_logins, bound
to the browser by a random key in the cookie, single use, 15 minutes) and returns the
upstream's authorization URL (built by Authlib's OAuth2Client). `finish` claims that trip
once, exchanges the code (Authlib, over `outbound.http_session`: verified TLS, timeouts)
and validates the ID token in full with joserfc: signature against the upstream's JWKS
(unknown `kid`: the JWKS is fetched again once), `alg` never `none`, `iss` (Entra ID's
`{tenantid}` template checked against the token's `tid`), `aud`, `azp`, `exp`, `iat`,
`nonce`. Discovery documents and JWKS are cached per process for CACHE_TTL seconds.
"""
from __future__ import annotations

import re
import threading
import time
from datetime import timedelta

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client.oauth2_session import OAuth2Auth, OAuth2ClientAuth
from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.client import OAuth2Client
from flask import current_app
from joserfc import errors as jose_errors
from joserfc import jws, jwt
from joserfc.jwk import KeySet
from prometheus_client import Counter
from sqlalchemy import update

from ... import clock, outbound, security
from ...audit import security_event
from ...errors import AuthserverError
from ...extensions import db
from ...observability import REGISTRY
from .. import upstreams
from ..models import Upstream, UpstreamLogin

TTL = 900  # a trip to the upstream lives 15 minutes at most
CACHE_TTL = 3600  # discovery and JWKS, per process
LEEWAY = 120  # seconds of clock skew accepted on exp / iat
MAX_AGE = 600  # an ID token issued longer ago than this is refused
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512", "EdDSA"]
MULTI_TENANT = ("organizations", "common", "consumers")
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")

OUTCOMES = Counter("authserver_upstream_signins_total",
                   "Upstream sign-in callbacks by provider and outcome",
                   ["upstream", "outcome"], registry=REGISTRY)

_cache: dict[str, tuple[float, object]] = {}
_cache_lock = threading.Lock()


class UpstreamFailed(AuthserverError):
    """The trip to the upstream failed; `reason` is a short code for events and metrics."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class UpstreamDown(UpstreamFailed):
    """The upstream could not be reached (or answered garbage)."""


def count(upstream: Upstream | str, outcome: str) -> None:
    OUTCOMES.labels(upstream=getattr(upstream, "name", upstream), outcome=outcome).inc()


def redirect_uri(upstream: Upstream) -> str:
    return f"{current_app.config['ISSUER'].rstrip('/')}/login/upstream/{upstream.name}/callback"


# --- discovery and keys ------------------------------------------------------------------------

def _get_json(url: str) -> dict:
    try:
        resp = outbound.http_session(current_app.config).get(url, allow_redirects=False)
        resp.raise_for_status()
        data = resp.json()
    except (requests.RequestException, ValueError, ConnectionError) as exc:
        raise UpstreamDown("The sign-in service could not be reached.", "unreachable") from exc
    if not isinstance(data, dict):
        raise UpstreamDown("The sign-in service answered something unexpected.", "bad_metadata")
    return data


def _cached(key: str, fetch, *, fresh: bool = False):
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
    if hit and not fresh and now - hit[0] < CACHE_TTL:
        return hit[1]
    value = fetch()
    with _cache_lock:
        _cache[key] = (now, value)
    return value


def forget_cache() -> None:
    with _cache_lock:
        _cache.clear()


def metadata(upstream: Upstream) -> dict:
    """The upstream's discovery document; its `issuer` must be the one configured (Entra's
    multi-tenant issuers answer with the `{tenantid}` template)."""
    url = upstream.issuer.rstrip("/") + "/.well-known/openid-configuration"
    meta = _cached("meta " + url, lambda: _get_json(url))
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri", "issuer"):
        if not isinstance(meta.get(name), str):
            raise UpstreamDown("The sign-in service's metadata is incomplete.", "bad_metadata")
    if meta["issuer"] != upstream.issuer and _tenant_template(upstream.issuer) != meta["issuer"]:
        raise UpstreamDown("The sign-in service's metadata names another issuer.",
                           "bad_metadata")
    return meta


def _jwks(uri: str, fresh: bool = False) -> KeySet:
    def fetch():
        data = _get_json(uri)
        try:
            return KeySet.import_key_set({"keys": [k for k in data.get("keys", [])
                                                   if k.get("use", "sig") == "sig"]})
        except (ValueError, TypeError, jose_errors.JoseError) as exc:
            raise UpstreamDown("The sign-in service's keys are unreadable.", "bad_jwks") from exc
    return _cached("jwks " + uri, fetch, fresh=fresh)


def _key_for(uri: str, kid: str | None):
    keys = _jwks(uri)
    if kid is None:
        return keys
    for attempt in (0, 1):
        found = [k for k in keys.keys if k.kid == kid]
        if found:
            return found[0]
        if attempt == 0:  # a key the upstream rotated in: fetch its JWKS again, once
            keys = _jwks(uri, fresh=True)
    raise UpstreamFailed("The sign-in service's answer was signed with an unknown key.",
                         "unknown_kid")


# --- the issuer rules --------------------------------------------------------------------------

def _tenant_template(issuer: str) -> str | None:
    """Entra ID's multi-tenant issuer (organizations, common, consumers) as the template its
    discovery document shows; None for any other issuer."""
    if not upstreams.is_entra(issuer):
        return None
    parts = issuer.rstrip("/").split("/")
    if len(parts) >= 4 and parts[3].lower() in MULTI_TENANT:
        parts[3] = "{tenantid}"
        return "/".join(parts)
    return None


def expected_issuer(configured: str, claims: dict) -> str:
    """The `iss` a token must carry. For Entra's multi-tenant issuers: the template with the
    token's own `tid`. For a single Entra tenant the token's `tid` must be that tenant."""
    template = _tenant_template(configured)
    tid = claims.get("tid")
    if template is not None:
        if not isinstance(tid, str) or not _looks_like_guid(tid):
            raise UpstreamFailed("The ID token has no tenant.", "bad_iss")
        return template.replace("{tenantid}", tid)
    if upstreams.is_entra(configured) and tid is not None:
        parts = configured.rstrip("/").split("/")
        tenant = parts[3] if len(parts) > 3 else ""
        if _looks_like_guid(tenant) and str(tid).lower() != tenant.lower():
            raise UpstreamFailed("The ID token is from another tenant.", "bad_iss")
    return configured


def _looks_like_guid(value: str) -> bool:
    return bool(GUID_RE.match(value))


def check_issuer(configured: str, claims: dict) -> None:
    if claims.get("iss") != expected_issuer(configured, claims):
        raise UpstreamFailed("The ID token is from another issuer.", "bad_iss")


# --- the ID token ------------------------------------------------------------------------------

def validate_id_token(upstream: Upstream, raw: str, nonce: str, jwks_uri: str,
                      now: int | None = None) -> dict:
    """The claims of a fully validated ID token; UpstreamFailed otherwise."""
    if not isinstance(raw, str) or raw.count(".") != 2:
        raise UpstreamFailed("The sign-in service sent no ID token.", "no_id_token")
    try:
        header = jws.extract_compact(raw.encode()).protected
    except (ValueError, jose_errors.JoseError) as exc:
        raise UpstreamFailed("The ID token is unreadable.", "bad_token") from exc
    if header.get("alg") not in ALGORITHMS:
        raise UpstreamFailed("The ID token is not signed with an accepted algorithm.", "bad_alg")
    kid = header.get("kid")
    key = _key_for(jwks_uri, kid if isinstance(kid, str) else None)
    try:
        token = jwt.decode(raw, key, algorithms=ALGORITHMS)
    except (ValueError, jose_errors.JoseError) as exc:
        raise UpstreamFailed("The ID token's signature is not valid.", "bad_signature") from exc
    claims = dict(token.claims)
    now = int(clock.now().timestamp()) if now is None else now
    check_issuer(upstream.issuer, claims)
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if upstream.client_id not in auds:
        raise UpstreamFailed("The ID token is meant for another application.", "bad_aud")
    if len(auds) > 1 and claims.get("azp") != upstream.client_id:
        raise UpstreamFailed("The ID token is meant for another application.", "bad_aud")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, (int, float)) or exp + LEEWAY < now:
        raise UpstreamFailed("The ID token has expired.", "expired")
    if not isinstance(iat, (int, float)) or iat - LEEWAY > now or iat + MAX_AGE + LEEWAY < now:
        raise UpstreamFailed("The ID token's issue time is not acceptable.", "bad_iat")
    if not isinstance(claims.get("nonce"), str) or not security.equal(claims["nonce"], nonce):
        raise UpstreamFailed("The ID token does not belong to this sign-in.", "bad_nonce")
    if not claims.get("sub") or not isinstance(claims["sub"], str):
        raise UpstreamFailed("The ID token names no subject.", "bad_token")
    return claims


# --- the trip ----------------------------------------------------------------------------------

def _browser_hash(raw: str) -> str:
    return security.keyed_hash(raw, "upstream-browser")


def _state_hash(raw: str) -> str:
    return security.keyed_hash(raw, "upstream-state")


def start(upstream: Upstream, browser_key: str, *, purpose: str = "login",
          user_id: int | None = None, next_url: str | None = None) -> str:
    """Record a trip and return the upstream's authorization URL. Commits."""
    meta = metadata(upstream)
    state, nonce, verifier = generate_token(43), generate_token(43), generate_token(64)
    now = clock.now()
    db.session.add(UpstreamLogin(state_hash=_state_hash(state),
                                 browser_hash=_browser_hash(browser_key),
                                 upstream_id=upstream.id, nonce=nonce, code_verifier=verifier,
                                 purpose=purpose, user_id=user_id,
                                 next_url=security.safe_next(next_url), created_at=now,
                                 expires_at=now + timedelta(seconds=TTL)))
    db.session.commit()
    client = OAuth2Client(None, client_id=upstream.client_id, scope="openid email profile",
                          redirect_uri=redirect_uri(upstream), code_challenge_method="S256")
    url, _ = client.create_authorization_url(meta["authorization_endpoint"], state=state,
                                             nonce=nonce, code_verifier=verifier)
    return url


def claim(upstream: Upstream, state: str | None, browser_key: str | None) -> UpstreamLogin:
    """The trip this callback ends, claimed once by a conditional UPDATE (committed)."""
    if not state or not isinstance(state, str) or len(state) > 200 or not browser_key:
        raise UpstreamFailed("This sign-in link is not valid.", "bad_state")
    now = clock.now()
    result = db.session.execute(
        update(UpstreamLogin)
        .where(UpstreamLogin.state_hash == _state_hash(state),
               UpstreamLogin.browser_hash == _browser_hash(browser_key),
               UpstreamLogin.upstream_id == upstream.id,
               UpstreamLogin.used_at.is_(None), UpstreamLogin.expires_at > now)
        .values(used_at=now).returning(UpstreamLogin.id))
    row = result.first()
    db.session.commit()
    if row is None:
        raise UpstreamFailed("This sign-in link is not valid or was already used.", "bad_state")
    return db.session.get(UpstreamLogin, row[0])


class _Client(OAuth2Client):
    """Authlib's OAuth 2.0 client over the outbound session (verified TLS, timeouts)."""

    client_auth_class = OAuth2ClientAuth
    token_auth_class = OAuth2Auth


def exchange(upstream: Upstream, trip: UpstreamLogin, code: str | None) -> dict:
    """Exchange the code and return the validated ID token's claims."""
    if not code or not isinstance(code, str) or len(code) > 4096:
        raise UpstreamFailed("The sign-in service sent no code.", "no_code")
    meta = metadata(upstream)
    client = _Client(outbound.http_session(current_app.config), client_id=upstream.client_id,
                     client_secret=upstreams.client_secret(upstream),
                     token_endpoint_auth_method="client_secret_post",
                     redirect_uri=redirect_uri(upstream))
    try:
        token = client.fetch_token(meta["token_endpoint"], code=code,
                                   code_verifier=trip.code_verifier,
                                   redirect_uri=redirect_uri(upstream))
    except (requests.RequestException, ConnectionError, ValueError) as exc:
        raise UpstreamDown("The sign-in service could not be reached.", "unreachable") from exc
    except OAuth2Error as exc:  # the upstream refused the code
        raise UpstreamFailed("The sign-in service refused the sign-in.", "token_error") from exc
    return validate_id_token(upstream, token.get("id_token"), trip.nonce, meta["jwks_uri"])


def record_failure(upstream: Upstream, exc: UpstreamFailed) -> None:
    security_event("upstream_failed", upstream=upstream.name, reason=exc.reason)
    db.session.commit()
    count(upstream, exc.reason)
