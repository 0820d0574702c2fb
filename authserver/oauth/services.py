"""Clients, authorization codes and consents: the storage behind Authlib's grants."""
from __future__ import annotations

import secrets
import time
from datetime import timedelta
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749.util import scope_to_list
from flask import current_app
from sqlalchemy import func, insert, select, update

from .. import clock, security
from ..accounts.models import User
from ..audit import security_event
from ..db import insert_unless_present
from ..errors import AuthserverError
from ..extensions import db
from ..tokens import services as tokens
from ..tokens.lifetimes import access_token_ttl
from ..tokens.liveness import holds_licence
from .cors import OriginInvalid, client_web_origins, parse_web_origin
from .models import (DEFAULT_GRANTS, DEFAULT_SCOPE, AuthorizationCode, Client, Consent,
                     SessionClient)

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
SCOPES = ("openid", "profile", "email", "offline_access", "admin")


class ClientInvalid(AuthserverError):
    pass


def _check_uri(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") and not (parts.scheme and "." in parts.scheme):
        raise ClientInvalid(f"Redirect URI must be absolute: {uri}")
    if parts.fragment:
        raise ClientInvalid(f"Redirect URI must not have a fragment: {uri}")
    return uri


def check_web_origins(origins) -> list[str] | None:
    """Registered web origins, normalised and without repeats; None keeps the default
    (the origins of the redirect URIs)."""
    if origins is None:
        return None
    found: list[str] = []
    for text in origins:
        try:
            origin = parse_web_origin(text)
        except OriginInvalid as exc:
            raise ClientInvalid(str(exc)) from exc
        if origin not in found:
            found.append(origin)
    return found


def _check_backchannel_uri(uri: str | None) -> str | None:
    """OIDC Back-Channel Logout 1.0 section 2.2: absolute http(s), no fragment; https
    outside 127.0.0.1/localhost (the token travels in it)."""
    if not uri:
        return None
    parts = urlsplit(uri)
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and local) or not parts.netloc:
        raise ClientInvalid(f"Back-channel logout URI must be an absolute https URI: {uri}")
    if parts.fragment or len(uri) > 320:
        raise ClientInvalid(f"Back-channel logout URI must have no fragment, at most 320 "
                            f"characters: {uri}")
    return uri


def create_client(name: str, redirect_uris: list[str], *, post_logout_redirect_uris=(),
                  public: bool = False, scope: str | None = None, grant_types=(),
                  require_pkce: bool = True, first_party: bool = True,
                  requires_licence: bool = False, client_id: str | None = None,
                  client_secret: str | None = None,
                  web_origins=None,
                  backchannel_logout_uri: str | None = None) -> tuple[Client, str | None]:
    """Register a client; returns it and its secret (shown once, stored as a keyed hash).
    `web_origins` None: the origins of the redirect URIs may call /token from a browser."""
    grants = list(grant_types) or list(DEFAULT_GRANTS)
    bad = [g for g in grants if g not in GRANT_TYPES]
    if bad:
        raise ClientInvalid(f"Unsupported grant type: {', '.join(bad)}")
    if public and "client_credentials" in grants:
        raise ClientInvalid("A public client cannot use client_credentials.")
    if "authorization_code" in grants and not redirect_uris:
        raise ClientInvalid("An authorization_code client needs at least one redirect URI.")
    scopes = scope_to_list(scope or DEFAULT_SCOPE)
    if any(s not in SCOPES for s in scopes):
        raise ClientInvalid(f"Scopes must be among: {' '.join(SCOPES)}")
    secret = None if public else (client_secret or security.random_token(32))
    client = Client(client_id=client_id or secrets.token_urlsafe(18), name=name,
                    secret_hash=security.keyed_hash(secret, "client_secret") if secret else None,
                    public=public, redirect_uris=[_check_uri(u) for u in redirect_uris],
                    post_logout_redirect_uris=[_check_uri(u) for u in post_logout_redirect_uris],
                    grant_types=grants, scope=" ".join(scopes), require_pkce=require_pkce or public,
                    first_party=first_party, requires_licence=requires_licence,
                    web_origins=check_web_origins(web_origins),
                    backchannel_logout_uri=_check_backchannel_uri(backchannel_logout_uri),
                    created_at=clock.now())
    db.session.add(client)
    db.session.commit()
    return client, secret


def set_backchannel_logout_uri(client: Client, uri: str | None) -> None:
    """Change where the client hears of ended sessions (None: nowhere); the caller commits."""
    client.backchannel_logout_uri = _check_backchannel_uri(uri)


def query_client(client_id: str | None) -> Client | None:
    if not client_id or not isinstance(client_id, str) or len(client_id) > 64:
        return None
    return db.session.scalar(select(Client).where(Client.client_id == client_id))


def query_client_cached(client_id: str | None) -> Client | None:
    """query_client for the token, revocation and introspection endpoints, from a per-process
    cache of detached rows that lives CLIENT_CACHE_TTL seconds (0 turns it off).

    Clients change rarely and are read on every token request; the lookup was the largest
    cost after the signature. A changed or deleted client takes effect within the TTL.
    """
    ttl = float(current_app.config["CLIENT_CACHE_TTL"])
    if ttl <= 0:
        return query_client(client_id)
    cache = current_app.extensions.setdefault("authserver.client_cache", {})
    hit = cache.get(client_id)
    now = time.monotonic()
    if hit is not None and hit[0] > now:
        return hit[1]
    client = query_client(client_id)
    if client is not None:
        db.session.expunge(client)
        if len(cache) > 10_000:
            cache.clear()
        cache[client_id] = (now + ttl, client)
    return client


def list_clients() -> list[Client]:
    return list(db.session.scalars(select(Client).order_by(Client.id)))


def all_web_origins() -> set[str]:
    """Every registered client's web origins: what a CORS preflight may be allowed for."""
    rows = db.session.execute(select(Client.redirect_uris, Client.web_origins))
    return {o for uris, origins in rows for o in client_web_origins(uris or [], origins)}


def set_web_origins(client: Client, origins) -> None:
    """Replace a client's web origins (None: back to its redirect URIs' origins); the
    caller commits. Other processes see it within CLIENT_CACHE_TTL."""
    client.web_origins = check_web_origins(origins)


def save_authorization_code(code: str, *, client: Client, user: User, session, redirect_uri: str,
                            scope: str, nonce: str | None, challenge: str | None,
                            method: str | None) -> None:
    """Store a code (hash only) bound to client, redirect URI, PKCE challenge and session.

    One INSERT without the ORM's unit of work: it runs on every /authorize and /refresh."""
    now = clock.now()
    ttl = int(current_app.config["AUTHORIZATION_CODE_TTL"])
    db.session.execute(insert(AuthorizationCode).values(
        code_hash=security.keyed_hash(code, "authz_code"), client_id=client.client_id,
        user_id=user.id, session_id=session.id, redirect_uri=redirect_uri or "", scope=scope,
        nonce=nonce, code_challenge=challenge, code_challenge_method=method,
        auth_time=int(session.auth_time.timestamp()), amr=session.amr or [],
        expires_at=now + timedelta(seconds=ttl), created_at=now))
    db.session.commit()


def claim_authorization_code(code: str, client: Client, access_jti: str | None = None
                             ) -> AuthorizationCode | None:
    """Redeem a code once (RFC 6749 section 4.1.2): a replay revokes what the first use issued.

    The claim records access_jti, the jti the access token about to be issued will carry, in
    the same conditional UPDATE, so a replay arriving at any later moment can revoke it.
    """
    if not code or len(code) > 256:
        return None
    row = db.session.scalar(select(AuthorizationCode).where(
        AuthorizationCode.code_hash == security.keyed_hash(code, "authz_code")))
    if row is None or row.client_id != client.client_id:
        return None
    now = clock.now()
    won = db.session.execute(
        update(AuthorizationCode).where(AuthorizationCode.id == row.id,
                                        AuthorizationCode.used_at.is_(None))
        .values(used_at=now, access_jti=access_jti)
        .execution_options(synchronize_session=False)).rowcount == 1
    if not won:
        db.session.refresh(row)
        if row.family_id:
            tokens.revoke_family(row.family_id, now)
        if row.access_jti:
            lives_until = (row.used_at or now).timestamp() + access_token_ttl(client, "")
            tokens.revoke_access_token(row.access_jti, int(lives_until) + 1)
        security_event("code_replay", user_id=row.user_id, client_id=client.client_id)
        db.session.commit()
        return None
    if now >= row.expires_at:
        return None
    if row.session_id is not None:
        record_session_client(row.session_id, client.client_id)
    return row


def record_session_client(session_id: int, client_id: str) -> None:
    """Remember that the client got tokens in this browser session (back-channel logout);
    in the caller's transaction, once per pair whatever the race."""
    insert_unless_present(db.session, SessionClient, ["session_id", "client_id"],
                          session_id=session_id, client_id=client_id, created_at=clock.now())


def nonce_used(client_id: str, nonce: str) -> bool:
    return db.session.scalar(select(AuthorizationCode.id).where(
        AuthorizationCode.client_id == client_id, AuthorizationCode.nonce == nonce).limit(1)
    ) is not None


def has_licence(user: User, client: Client) -> bool:
    """The licence rule of tokens.liveness, asked at /authorize before a code is issued."""
    return holds_licence(user.id, client)


def needs_consent(user: User, client: Client, scope: str) -> bool:
    if client.first_party:
        return False
    row = db.session.scalar(select(Consent).where(Consent.user_id == user.id,
                                                  Consent.client_id == client.id))
    granted = set(scope_to_list(row.scope) if row else [])
    return not set(scope_to_list(scope) or []).issubset(granted)


def grant_consent(user: User, client: Client, scope: str) -> None:
    row = db.session.scalar(select(Consent).where(Consent.user_id == user.id,
                                                  Consent.client_id == client.id))
    if row is None:
        row = Consent(user_id=user.id, client_id=client.id, scope="", granted_at=clock.now())
        db.session.add(row)
    row.scope = " ".join(sorted(set(scope_to_list(row.scope) or []) |
                                set(scope_to_list(scope) or [])))
    security_event("consent_granted", user_id=user.id, client_id=client.client_id, scope=scope)
    db.session.commit()


def refuse_without_licence(user: User, client: Client) -> None:
    """/authorize for an app the account holds no licence for: recorded before the page (or
    the access_denied redirect) is answered. Commits."""
    security_event("no_licence", user_id=user.id, client_id=client.client_id)
    db.session.commit()


def note_refresh_without_state(client: Client) -> None:
    """/refresh without `state` (the app cannot tie the answer to its request): recorded,
    and the request goes on. Commits."""
    security_event("refresh_without_state", client_id=client.client_id)
    db.session.commit()


def record_redirect_loop(client_id: str | None, reason: str, cookies_blocked: bool) -> None:
    """The loop guard stopped a redirect loop (SPEC section 7): recorded when decided, before
    the loop page is rendered. Commits."""
    security_event("redirect_loop", client_id=(client_id or "")[:64], reason=reason,
                   cookies=not cookies_blocked)
    db.session.commit()


def count_unredeemed(code_hashes: list[str]) -> int:
    """How many of these codes (by keyed hash) were never redeemed at /token (loop guard)."""
    if not code_hashes:
        return 0
    redeemed = db.session.scalar(select(func.count(AuthorizationCode.id)).where(
        AuthorizationCode.code_hash.in_(set(code_hashes)), AuthorizationCode.used_at.is_not(None)))
    return len(code_hashes) - (redeemed or 0)
