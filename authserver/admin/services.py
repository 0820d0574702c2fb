"""Administrative use cases shared by the Users module, the admin API and the CLI.

Every action records a security event naming the administrator (`actor_id`) or, for an
API client acting on its own behalf, the client (`client_id`).
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from .. import clock
from ..accounts import mfa, passkeys, search, signin, states
from ..accounts import services as accounts
from ..accounts.search import MAX_QUERY, clean_query, is_prefix_term  # noqa: F401 (views, tests)
from ..accounts.models import BrowserSession, Licence, User
from ..accounts.states import Action
from ..audit import SecurityEvent, security_event
from ..errors import AuthserverError
from ..extensions import db
from ..oauth import services as oauth
from ..oauth.models import Client
from ..passwords import services as passwords
from ..passwords.policy import check_password
from ..tokens import services as tokens

MAX_ID = 2**31 - 1  # PostgreSQL `integer`: a larger id can name no row


class UserNotFound(AuthserverError):
    pass


class ClientNotFound(AuthserverError):
    pass


class UserExists(AuthserverError):
    """The user name or email address is already taken."""


class SelfActionRefused(AuthserverError):
    """An administrator may not lock themselves out."""


@dataclass(frozen=True)
class Profile:
    """What the Users module shows about one user."""

    user: User
    active_sessions: int
    licences: list[tuple[Client, bool]]
    events: list[SecurityEvent]
    actors: dict[int, str]


# --- lookups ---------------------------------------------------------------------------------

def get_user_or_raise(user_id: int) -> User:
    """The user with this id; ids outside the column's range are simply not found."""
    user = accounts.get_user(user_id) if 0 < user_id <= MAX_ID else None
    if user is None:
        raise UserNotFound("No such user.")
    return user


def find_user_or_raise(login: str) -> User:
    user = accounts.find_by_login(login)
    if user is None:
        raise UserNotFound(f"No user named {login!r}.")
    return user


def find_by_sub(sub: str) -> User | None:
    """The user an access token's `sub` names, or None."""
    if not isinstance(sub, str) or not sub or len(sub) > 36:
        return None
    return db.session.scalar(select(User).where(User.sub == sub))


def search_users(q: str, *, page: int = 1, per_page: int = 20) -> tuple[list[User], bool]:
    """One page of matching users in creation order (accounts.search), and whether another
    page follows.

    No total count: counting every match of a common query over a million rows is the slow
    part of a search, and the page does not need it.
    """
    rows = search.find(q, limit=per_page + 1, offset=(page - 1) * per_page)
    return rows[:per_page], len(rows) > per_page


def list_users(q: str, *, after: int | None, limit: int) -> tuple[list[User], int | None]:
    """Matching users after a user id (keyset pagination, creation order); returns the next
    key or None."""
    rows = search.find(q, limit=limit + 1, after=after or 0)
    more = len(rows) > limit
    return rows[:limit], rows[limit - 1].id if more else None


def list_events(*, user_id: int | None, before: int | None, limit: int
                ) -> tuple[list[SecurityEvent], int | None]:
    """Security events, newest first, optionally for one user; returns the next cursor id."""
    stmt = select(SecurityEvent).order_by(SecurityEvent.id.desc())
    if user_id is not None:
        stmt = stmt.where(SecurityEvent.user_id == user_id)
    if before is not None:
        stmt = stmt.where(SecurityEvent.id < before)
    rows = list(db.session.scalars(stmt.limit(limit + 1)))
    more = len(rows) > limit
    return rows[:limit], rows[limit - 1].id if more else None


def count_active_sessions(user: User) -> int:
    """Live browser sessions of the user (each also bounds its refresh tokens)."""
    return int(db.session.scalar(select(func.count(BrowserSession.id)).where(
        BrowserSession.user_id == user.id, BrowserSession.revoked_at.is_(None),
        BrowserSession.expires_at > clock.now())) or 0)


def licensed_client_ids(user: User) -> list[str]:
    """The client_ids of the applications the user holds a licence for."""
    return list(db.session.scalars(select(Client.client_id).join(
        Licence, Licence.client_id == Client.id).where(Licence.user_id == user.id)
        .order_by(Client.client_id)))


def user_profile(user: User, events: int = 20) -> Profile:
    """State, sessions, licences and the latest security events of one user."""
    granted = set(db.session.scalars(select(Licence.client_id).where(Licence.user_id == user.id)))
    clients = db.session.scalars(select(Client).where(or_(
        Client.requires_licence.is_(True), Client.id.in_(sorted(granted)))).order_by(Client.name))
    rows, _ = list_events(user_id=user.id, before=None, limit=events)
    actor_ids = {e.actor_id for e in rows if e.actor_id is not None}
    actors = dict(db.session.execute(select(User.id, User.username).where(
        User.id.in_(sorted(actor_ids)))).all()) if actor_ids else {}
    return Profile(user=user, active_sessions=count_active_sessions(user),
                   licences=[(c, c.id in granted) for c in clients], events=rows, actors=actors)


# --- actions ---------------------------------------------------------------------------------

def _refuse_self(user: User, actor_id: int | None, what: str) -> None:
    if actor_id is not None and user.id == actor_id:
        raise SelfActionRefused(f"You cannot {what} your own account here.")


def _check_name(name: str) -> None:
    if any(ord(c) < 32 for c in name or ""):
        raise accounts.UserInvalid("A display name cannot contain control characters.")


def create_user(username: str, email: str, name: str = "", *, password: str | None = None,
                admin: bool = False, actor_id: int | None = None,
                client_id: str | None = None) -> User:
    """Create a user; without a password they are invited with an emailed temporary one.

    Raises UserInvalid (bad values) or UserExists (name or address taken).
    """
    email = accounts.check_email(email)
    _check_name(name)
    if accounts.find_by_login(username) or accounts.find_by_login(email):
        raise UserExists("A user with that user name or email address already exists.")
    user = accounts.new_user(username, email, name, admin=admin)
    if password is not None:
        check_password(password, username=user.username, email=user.email)
        accounts.set_password(user, password)
    try:
        db.session.flush()
    except IntegrityError as exc:  # a concurrent create won the race for the name
        db.session.rollback()
        raise UserExists("A user with that user name or email address already exists.") from exc
    security_event("user_created", user_id=user.id, actor_id=actor_id, client_id=client_id)
    if password is None:
        passwords.send_temporary_password(user, actor_id, client_id)
    db.session.commit()
    return user


def reset_user(user: User, actor_id: int | None, client_id: str | None = None) -> None:
    """Reset: the user must choose a new password (code emailed at once); sessions end."""
    _refuse_self(user, actor_id, "reset")
    states.target(user, Action.RESET)
    passwords.admin_reset(user, actor_id, client_id)


def send_temporary_password(user: User, actor_id: int | None,
                            client_id: str | None = None) -> None:
    """Email a generated temporary password, valid 7 days; nobody but the user sees it."""
    _refuse_self(user, actor_id, "send a temporary password to")
    states.target(user, Action.TEMPORARY_PASSWORD)
    passwords.send_temporary_password(user, actor_id, client_id)


def disable_user(user: User, actor_id: int | None, client_id: str | None = None) -> None:
    """Disable: the user cannot sign in, and every session and refresh token ends."""
    _refuse_self(user, actor_id, "disable")
    states.apply(user, Action.DISABLE)
    tokens.revoke_user_sessions(user.id, "admin_disable")
    security_event("user_disabled", user_id=user.id, actor_id=actor_id, client_id=client_id)
    db.session.commit()


def enable_user(user: User, actor_id: int | None, client_id: str | None = None) -> None:
    """Enable a disabled account: it returns to the state it had before Disable (a pending
    Reset or temporary password, with its expiry, stays). Enabling an active account
    changes nothing; any other state is refused (states.TABLE).
    """
    if user.state == states.AccountState.ACTIVE:
        return
    states.apply(user, Action.ENABLE)
    signin.end_for_users([user.id], "admin_enable")
    security_event("user_enabled", user_id=user.id, actor_id=actor_id, client_id=client_id)
    db.session.commit()


def reset_mfa(user: User, actor_id: int | None, client_id: str | None = None) -> None:
    """*Reset two-step sign-in*: the authenticator app and recovery codes are removed, every
    session and sign-in in progress ends, and the user is emailed. Audited."""
    _refuse_self(user, actor_id, "reset the two-step sign-in of")
    mfa.admin_reset(user, actor_id, client_id)
    tokens.revoke_user_sessions(user.id, "admin_reset_mfa")
    db.session.commit()


def list_passkeys(user: User) -> list:
    """The user's passkeys, oldest first. A lookup."""
    return passkeys.of_user(user)


def remove_passkey(user: User, passkey_id: int, actor_id: int | None,
                   client_id: str | None = None):
    """Remove one of the user's passkeys (emailed, audited with the administrator); raises
    accounts.passkeys.PasskeyNotFound. Commits."""
    return passkeys.remove(user, passkey_id, actor_id=actor_id, client_id=client_id)


def revoke_sessions(user: User, actor_id: int | None, client_id: str | None = None) -> int:
    """End every browser session and refresh token of the user; returns the session count."""
    n = tokens.revoke_user_sessions(user.id, "admin_revoke")
    security_event("sessions_revoked", user_id=user.id, actor_id=actor_id, client_id=client_id,
                   count=n)
    db.session.commit()
    return n


def set_licence(user: User, client_id: str, granted: bool, actor_id: int | None,
                via_client: str | None = None) -> Client:
    """Grant or remove a user's licence for a client; doing it twice changes nothing more."""
    client = oauth.query_client(client_id)
    if client is None:
        raise ClientNotFound("No such application.")
    row = db.session.scalar(select(Licence).where(Licence.user_id == user.id,
                                                  Licence.client_id == client.id))
    if granted and row is None:
        db.session.add(Licence(user_id=user.id, client_id=client.id, granted_at=clock.now()))
    elif not granted and row is not None:
        db.session.delete(row)
    signin.end_for_users([user.id], "admin_licence")
    security_event("licence_granted" if granted else "licence_removed", user_id=user.id,
                   actor_id=actor_id, client_id=client.client_id,
                   **({"via_client": via_client} if via_client else {}))
    db.session.commit()
    return client


def get_client_or_raise(client_id: str) -> Client:
    """The client with this client_id, or ClientNotFound."""
    client = oauth.query_client(client_id)
    if client is None:
        raise ClientNotFound("No such application.")
    return client


def set_web_origins(client: Client, origins: list[str] | None, actor_id: int | None,
                    via_client: str | None = None) -> Client:
    """Replace the origins whose pages may call /token, /userinfo and /revoke (SPEC section
    7); None returns to the origins of the redirect URIs. Running processes follow within
    CLIENT_CACHE_TTL."""
    oauth.set_web_origins(client, origins)
    security_event("client_web_origins_changed", actor_id=actor_id, client_id=client.client_id,
                   web_origins=client.web_origins,
                   **({"via_client": via_client} if via_client else {}))
    db.session.commit()
    return client


def set_backchannel_logout_uri(client: Client, *, backchannel_logout_uri: str | None,
                               actor_id: int | None, via_client: str | None = None) -> Client:
    """Set an application's back-channel logout URI (OIDC Back-Channel Logout 1.0 section 2.2;
    https, or http on this machine)."""
    oauth.set_backchannel_logout_uri(client, backchannel_logout_uri)
    security_event("client_backchannel_logout_uri_changed", actor_id=actor_id,
                   client_id=client.client_id,
                   backchannel_logout_uri=client.backchannel_logout_uri,
                   **({"via_client": via_client} if via_client else {}))
    db.session.commit()
    return client
