"""Upstream OpenID providers and linked identities (SPEC section 10): the rules of linking.

An identity is (upstream, subject), the subject being `sub` (Entra ID: `tid` and `oid`),
never an email. It is linked to an account only by: the signed-in user's *Connect LABEL*
(`link` with the user proven first), `authserver users link` (`link` by an administrator),
or `--create-users` for a verified email in one of the upstream's domains (`provision`).
An unlinked identity whose email matches an account is refused (`NotLinked`): it never
signs in to that account. Services commit; lookups never write.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select

from .. import clock, sealing
from ..audit import security_event
from ..errors import AuthserverError
from ..extensions import db
from . import services
from .models import Upstream, UpstreamIdentity, User

SECRET_PURPOSE = sealing.register("upstreams", "client_secret", "upstream-client-secret")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
ENTRA_HOST = "login.microsoftonline.com"


class UpstreamInvalid(AuthserverError):
    """Bad input to add/link/unlink (a clear message for the CLI, API and pages)."""


class UpstreamNotFound(UpstreamInvalid):
    """No upstream by that name."""


class IdentityTaken(UpstreamInvalid):
    """The identity is another account's, or the account has one at this upstream."""


class NotLinked(AuthserverError):
    """The identity is linked to no account and may not create one."""


def is_entra(issuer: str) -> bool:
    return (urlsplit(issuer).hostname or "").lower() == ENTRA_HOST


def subject_of(upstream: Upstream, claims: dict) -> str:
    """The identity's key at this upstream: Entra ID's tid and oid, otherwise `sub`."""
    if is_entra(upstream.issuer) and claims.get("tid") and claims.get("oid"):
        return f"{claims['tid']}:{claims['oid']}"
    return str(claims["sub"])


# --- upstreams ---------------------------------------------------------------------------------

def all_upstreams() -> list[Upstream]:
    return list(db.session.scalars(select(Upstream).order_by(Upstream.name)))


@dataclass(frozen=True)
class Button:
    """What the sign-in page shows of an upstream: *Sign in with LABEL*, to /upstream/NAME."""

    name: str
    label: str


BUTTONS_CACHE = "authserver.upstream_buttons"


def sign_in_buttons() -> tuple[Button, ...]:
    """The sign-in page's upstream buttons, from a per-process cache that lives
    UPSTREAM_CACHE_TTL seconds (0 turns it off): the page is shown before every sign-in and
    upstreams change rarely. add() and remove() clear this process's cache at once; other
    processes show the change within the TTL (the upstream's own routes read the table)."""
    ttl = float(current_app.config["UPSTREAM_CACHE_TTL"])
    now = time.monotonic()
    hit = current_app.extensions.get(BUTTONS_CACHE)
    if hit is not None and hit[0] > now:
        return hit[1]
    buttons = tuple(Button(name, label) for name, label in db.session.execute(
        select(Upstream.name, Upstream.label).order_by(Upstream.name)))
    if ttl > 0:
        current_app.extensions[BUTTONS_CACHE] = (now + ttl, buttons)
    return buttons


def _forget_buttons() -> None:
    current_app.extensions.pop(BUTTONS_CACHE, None)


def find(name: str | None) -> Upstream | None:
    if not name or not isinstance(name, str) or len(name) > 64:
        return None
    return db.session.scalar(select(Upstream).where(Upstream.name == name.lower()))


def find_or_raise(name: str) -> Upstream:
    upstream = find(name)
    if upstream is None:
        raise UpstreamNotFound(f"No upstream called {name!r} (see `authserver upstreams list`).")
    return upstream


def _check_issuer(issuer: str) -> str:
    issuer = (issuer or "").strip()
    parts = urlsplit(issuer)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query \
            or parts.fragment:
        raise UpstreamInvalid("The issuer must be an https:// URL without query or fragment.")
    if parts.scheme == "http" and not current_app.config.get("TESTING") \
            and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise UpstreamInvalid("The issuer must use https:// (plain http only on loopback).")
    return issuer


def add(name: str, issuer: str, client_id: str, client_secret: str, *, label: str = "",
        domains=(), create_users: bool = False, actor_id: int | None = None) -> Upstream:
    """Register an upstream; the client secret is sealed under the secret key. Commits."""
    name = (name or "").strip().lower()
    if not NAME_RE.match(name):
        raise UpstreamInvalid("A name is 1-64 lower-case letters, digits, _ or -, "
                              "starting with a letter or digit.")
    if find(name):
        raise UpstreamInvalid(f"An upstream called {name!r} already exists.")
    issuer = _check_issuer(issuer)
    client_id, client_secret = (client_id or "").strip(), client_secret or ""
    if not client_id or len(client_id) > 255:
        raise UpstreamInvalid("The client id is required (at most 255 characters).")
    if not client_secret or len(client_secret) > 1000:
        raise UpstreamInvalid("The client secret is required (at most 1000 characters).")
    label = (label or name).strip()[:100]
    clean = []
    for domain in domains or ():
        domain = domain.strip().lower().lstrip("@")
        if not DOMAIN_RE.match(domain):
            raise UpstreamInvalid(f"{domain!r} is not a domain name (example.com).")
        clean.append(domain)
    if create_users and not clean:
        raise UpstreamInvalid("--create-users needs at least one --domain.")
    upstream = Upstream(name=name, issuer=issuer, client_id=client_id, label=label,
                        client_secret=sealing.seal(current_app.config, client_secret.encode(),
                                                   SECRET_PURPOSE),
                        domains=clean, create_users=bool(create_users), created_at=clock.now())
    db.session.add(upstream)
    security_event("upstream_added", actor_id=actor_id, upstream=name, issuer=issuer)
    db.session.commit()
    _forget_buttons()
    return upstream


def remove(name: str, actor_id: int | None = None) -> int:
    """Remove an upstream and every identity linked through it; returns how many. Commits."""
    upstream = find_or_raise(name)
    count = len(db.session.scalars(select(UpstreamIdentity.id).where(
        UpstreamIdentity.upstream_id == upstream.id)).all())
    db.session.delete(upstream)
    security_event("upstream_removed", actor_id=actor_id, upstream=upstream.name,
                   identities=count)
    db.session.commit()
    _forget_buttons()
    return count


def client_secret(upstream: Upstream) -> str:
    return sealing.unseal(current_app.config, upstream.client_secret, SECRET_PURPOSE).decode()


# --- identities --------------------------------------------------------------------------------

def identities_of(user: User) -> list[UpstreamIdentity]:
    return list(db.session.scalars(select(UpstreamIdentity).where(
        UpstreamIdentity.user_id == user.id).order_by(UpstreamIdentity.id)))


def find_identity(upstream: Upstream, subject: str) -> UpstreamIdentity | None:
    return db.session.scalar(select(UpstreamIdentity).where(
        UpstreamIdentity.upstream_id == upstream.id, UpstreamIdentity.subject == subject))


def link(user: User, upstream: Upstream, subject: str, *, email: str | None = None,
         actor_id: int | None = None, how: str = "admin") -> UpstreamIdentity:
    """Link (upstream, subject) to user. Refused when the identity is another account's, or
    the user already has one at this upstream. Commits."""
    subject = (subject or "").strip()
    if not subject or len(subject) > 255:
        raise UpstreamInvalid("The subject is required (at most 255 characters).")
    existing = find_identity(upstream, subject)
    if existing is not None:
        if existing.user_id == user.id:
            return existing
        raise IdentityTaken(f"This {upstream.label} account is already connected to "
                              "another account here.")
    if any(i.upstream_id == upstream.id for i in identities_of(user)):
        raise IdentityTaken(f"{user.username} already has a {upstream.label} account "
                              "connected; disconnect it first.")
    identity = UpstreamIdentity(upstream_id=upstream.id, subject=subject, user_id=user.id,
                                email=(email or None) and str(email)[:320],
                                created_at=clock.now())
    db.session.add(identity)
    security_event("upstream_linked", user_id=user.id, actor_id=actor_id,
                   upstream=upstream.name, how=how)
    db.session.commit()
    return identity


def unlink(user: User, upstream: Upstream, actor_id: int | None = None) -> None:
    """Remove user's identity at upstream. Commits."""
    found = [i for i in identities_of(user) if i.upstream_id == upstream.id]
    if not found:
        raise UpstreamNotFound(f"{user.username} has no {upstream.label} account connected.")
    for identity in found:
        db.session.delete(identity)
    security_event("upstream_unlinked", user_id=user.id, actor_id=actor_id,
                   upstream=upstream.name)
    db.session.commit()


def _email_domain(email: str) -> str:
    return email.rsplit("@", 1)[-1].lower() if "@" in email else ""


def account_for(upstream: Upstream, claims: dict) -> User:
    """The account a validated ID token signs in to: its linked account, or a new one under
    --create-users. NotLinked otherwise (even when an account has the same email). Commits."""
    subject = subject_of(upstream, claims)
    identity = find_identity(upstream, subject)
    if identity is not None:
        identity.last_used_at = clock.now()
        db.session.commit()
        return identity.user
    email = claims.get("email")
    verified = claims.get("email_verified") is True
    if not (upstream.create_users and isinstance(email, str) and verified
            and _email_domain(email) in upstream.domains):
        security_event("upstream_refused_unlinked", upstream=upstream.name,
                       reason="not_allowed" if upstream.create_users else "not_linked")
        db.session.commit()
        raise NotLinked("No account here is connected to this upstream account.")
    try:
        user = services.new_user(email, email, str(claims.get("name") or "")[:200])
    except services.UserInvalid as exc:  # the email or user name belongs to an account
        db.session.rollback()
        security_event("upstream_refused_unlinked", upstream=upstream.name, reason="exists")
        db.session.commit()
        raise NotLinked("No account here is connected to this upstream account.") from exc
    db.session.flush()
    db.session.add(UpstreamIdentity(upstream_id=upstream.id, subject=subject, user_id=user.id,
                                    email=email[:320], created_at=clock.now(),
                                    last_used_at=clock.now()))
    security_event("upstream_user_created", user_id=user.id, upstream=upstream.name)
    db.session.commit()
    return user


def passwordless_labels(user: User) -> list[str]:
    """The labels of the upstreams a user without a password signs in with."""
    return [i.upstream.label for i in identities_of(user)]


def record_sign_in(user, upstream, trusted_mfa: bool) -> None:
    """Audit a verified upstream sign-in before the sign-in record takes over."""
    security_event("upstream_signed_in", user_id=user.id, upstream=upstream.name,
                   trusted_mfa=trusted_mfa)
    db.session.commit()
