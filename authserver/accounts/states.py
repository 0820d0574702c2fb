"""Account states and the one table of what each action does to each state (SPEC sections 4
and 8). The web pages, the admin API and the CLI all move accounts through `apply`.
"""
from __future__ import annotations

from enum import StrEnum

from ..errors import AuthserverError


class AccountState(StrEnum):
    ACTIVE = "active"
    FORCE_CHANGE_PASSWORD = "force_change_password"
    RESET_REQUIRED = "reset_required"
    DISABLED = "disabled"


class Action(StrEnum):
    RESET = "reset"                          # an administrator's Reset
    TEMPORARY_PASSWORD = "temporary_password"  # an administrator's temporary password
    DISABLE = "disable"
    ENABLE = "enable"
    SELF_RESET = "self_reset"                # a correct emailed code (forgot password)
    FORCED_CHANGE = "forced_change"          # /change-password after a temporary password
    PASSWORD_CHANGE = "password_change"      # /account/password, signed in


S = AccountState
A = Action
RESTORE = "restore"  # Enable: back to the state before Disable
SAME = "same"        # allowed, the state does not change

# (state, action) -> the new state, RESTORE or SAME; a pair missing here is refused.
TABLE: dict[tuple[AccountState, Action], AccountState | str] = {
    (S.ACTIVE, A.RESET): S.RESET_REQUIRED,
    (S.ACTIVE, A.TEMPORARY_PASSWORD): S.FORCE_CHANGE_PASSWORD,
    (S.ACTIVE, A.DISABLE): S.DISABLED,
    (S.ACTIVE, A.ENABLE): SAME,
    (S.ACTIVE, A.SELF_RESET): SAME,
    (S.ACTIVE, A.PASSWORD_CHANGE): SAME,
    (S.FORCE_CHANGE_PASSWORD, A.RESET): S.RESET_REQUIRED,
    (S.FORCE_CHANGE_PASSWORD, A.TEMPORARY_PASSWORD): S.FORCE_CHANGE_PASSWORD,
    (S.FORCE_CHANGE_PASSWORD, A.DISABLE): S.DISABLED,
    (S.FORCE_CHANGE_PASSWORD, A.FORCED_CHANGE): S.ACTIVE,
    (S.RESET_REQUIRED, A.RESET): S.RESET_REQUIRED,
    (S.RESET_REQUIRED, A.TEMPORARY_PASSWORD): S.FORCE_CHANGE_PASSWORD,
    (S.RESET_REQUIRED, A.DISABLE): S.DISABLED,
    (S.RESET_REQUIRED, A.SELF_RESET): S.ACTIVE,
    (S.DISABLED, A.DISABLE): SAME,
    (S.DISABLED, A.ENABLE): RESTORE,
}


REFUSALS = {
    A.RESET: "A {state} account cannot be reset; enable it first.",
    A.TEMPORARY_PASSWORD: "A {state} account cannot get a temporary password; enable it first.",
    A.DISABLE: "A {state} account cannot be disabled.",
    A.ENABLE: "Only a disabled account can be enabled; this one is {state}.",
    A.SELF_RESET: "A {state} account cannot reset its password with a code.",
    A.FORCED_CHANGE: "Only an account with a temporary password changes it here; this one "
                     "is {state}.",
    A.PASSWORD_CHANGE: "A {state} account cannot change its password here.",
}


class InvalidTransition(AuthserverError):
    pass


def target(user, action: Action) -> AccountState:
    """The state `action` would leave the user in; InvalidTransition when the table refuses.

    Nothing changes, so a caller checks first and a refused action leaves nothing half-done.
    """
    current = AccountState(user.state)
    outcome = TABLE.get((current, Action(action)))
    if outcome is None:
        raise InvalidTransition(REFUSALS[Action(action)].format(state=current.value))
    if outcome == SAME:
        return current
    if outcome == RESTORE:
        return AccountState(user.state_before_disable or S.ACTIVE)
    return AccountState(outcome)


def apply(user, action: Action) -> AccountState:
    """Move the user as the table says; Disable remembers the state Enable goes back to.

    A temporary password's expiry and a pending reset code are left alone by Disable and
    Enable, so the account returns exactly as it was.
    """
    new = target(user, action)
    current = AccountState(user.state)
    if new == S.DISABLED and current != S.DISABLED:
        user.state_before_disable = current.value
    if current == S.DISABLED and new != S.DISABLED:
        user.state_before_disable = None
    user.state = new.value
    return new


def can_self_reset(user) -> bool:
    """Only active accounts and those an administrator sent to reset may use a code."""
    return user is not None and (AccountState(user.state), A.SELF_RESET) in TABLE


def can_login(user) -> bool:
    return user is not None and user.state != S.DISABLED


def can_use_tokens(user) -> bool:
    """Tokens (refresh, userinfo) work only for active accounts."""
    return user is not None and user.state == S.ACTIVE
