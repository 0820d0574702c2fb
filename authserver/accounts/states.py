"""Account states and the transitions allowed between them (SPEC section 4)."""
from __future__ import annotations

from enum import StrEnum

from ..errors import AuthserverError


class AccountState(StrEnum):
    ACTIVE = "active"
    FORCE_CHANGE_PASSWORD = "force_change_password"
    RESET_REQUIRED = "reset_required"
    DISABLED = "disabled"


S = AccountState
ALLOWED: dict[AccountState, frozenset[AccountState]] = {
    S.ACTIVE: frozenset({S.FORCE_CHANGE_PASSWORD, S.RESET_REQUIRED, S.DISABLED, S.ACTIVE}),
    S.FORCE_CHANGE_PASSWORD: frozenset({S.ACTIVE, S.FORCE_CHANGE_PASSWORD, S.RESET_REQUIRED,
                                        S.DISABLED}),
    S.RESET_REQUIRED: frozenset({S.ACTIVE, S.FORCE_CHANGE_PASSWORD, S.RESET_REQUIRED, S.DISABLED}),
    # Enabling returns to active; a password the user no longer trusts is reset separately.
    S.DISABLED: frozenset({S.ACTIVE, S.DISABLED}),
}


class InvalidTransition(AuthserverError):
    pass


def transition(user, target: AccountState) -> None:
    """Move a user to a new state, refusing transitions the table does not allow."""
    current = AccountState(user.state)
    if target not in ALLOWED[current]:
        raise InvalidTransition(f"cannot go from {current} to {target}")
    user.state = target.value


def can_self_reset(user) -> bool:
    """Only active accounts and those an administrator sent to reset may use a code."""
    return user is not None and user.state in (S.ACTIVE, S.RESET_REQUIRED)


def can_login(user) -> bool:
    return user is not None and user.state != S.DISABLED


def can_use_tokens(user) -> bool:
    """Tokens (refresh, userinfo) work only for active accounts."""
    return user is not None and user.state == S.ACTIVE
