"""Administrative use cases shared by the Users module, the admin API and the CLI."""
from __future__ import annotations

from sqlalchemy import select

from ..accounts import services as accounts
from ..accounts.models import Licence, User
from ..accounts.states import AccountState, transition
from ..audit import security_event
from ..errors import AuthserverError
from ..extensions import db
from ..oauth import services as oauth
from ..passwords import services as passwords
from ..passwords.policy import check_password
from ..tokens import services as tokens


class UserNotFound(AuthserverError):
    pass


def get_user_or_raise(user_id: int) -> User:
    user = accounts.get_user(user_id)
    if user is None:
        raise UserNotFound("No such user.")
    return user


def find_user_or_raise(login: str) -> User:
    user = accounts.find_by_login(login)
    if user is None:
        raise UserNotFound(f"No user named {login!r}.")
    return user


def create_user(username: str, email: str, name: str = "", *, password: str | None = None,
                admin: bool = False, actor_id: int | None = None) -> User:
    """Create a user; without a password they are invited with an emailed temporary one."""
    user = accounts.new_user(username, email, name, admin=admin)
    if password is not None:
        check_password(password, username=user.username, email=user.email)
        accounts.set_password(user, password)
    db.session.flush()
    security_event("user_created", user_id=user.id, actor_id=actor_id)
    if password is None:
        passwords.send_temporary_password(user, actor_id)
    db.session.commit()
    return user


def reset_user(user: User, actor_id: int | None) -> None:
    passwords.admin_reset(user, actor_id)


def send_temporary_password(user: User, actor_id: int | None) -> None:
    passwords.send_temporary_password(user, actor_id)


def disable_user(user: User, actor_id: int | None) -> None:
    """Disable: the user cannot sign in, and every session and refresh token ends."""
    transition(user, AccountState.DISABLED)
    tokens.revoke_user_sessions(user.id)
    security_event("user_disabled", user_id=user.id, actor_id=actor_id)
    db.session.commit()


def enable_user(user: User, actor_id: int | None) -> None:
    transition(user, AccountState.ACTIVE)
    security_event("user_enabled", user_id=user.id, actor_id=actor_id)
    db.session.commit()


def revoke_sessions(user: User, actor_id: int | None) -> int:
    n = tokens.revoke_user_sessions(user.id)
    security_event("sessions_revoked", user_id=user.id, actor_id=actor_id, count=n)
    db.session.commit()
    return n


def set_licence(user: User, client_id: str, granted: bool, actor_id: int | None) -> None:
    """Grant or remove a user's licence for a client."""
    client = oauth.query_client(client_id)
    if client is None:
        raise UserNotFound("No such application.")
    row = db.session.scalar(select(Licence).where(Licence.user_id == user.id,
                                                  Licence.client_id == client.id))
    if granted and row is None:
        db.session.add(Licence(user_id=user.id, client_id=client.id))
    elif not granted and row is not None:
        db.session.delete(row)
    security_event("licence_granted" if granted else "licence_removed", user_id=user.id,
                   actor_id=actor_id, client_id=client.client_id)
    db.session.commit()
