"""Password rules (SPEC section 4): length bounds, not the user name, not a common password.

No composition rules (NIST SP 800-63B 5.1.1.2). The common-password list is the 30,000
most frequent passwords shipped with zxcvbn (MIT licence).
"""
from __future__ import annotations

from functools import lru_cache

from flask import current_app
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from ..errors import AuthserverError


class PasswordRejected(AuthserverError):
    pass


@lru_cache(maxsize=1)
def _common() -> frozenset[str]:
    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])


def check_password(password: str, *, username: str = "", email: str = "") -> None:
    """Raise PasswordRejected with the reason a person can act on."""
    cfg = current_app.config
    low, high = int(cfg["PASSWORD_MIN_LENGTH"]), int(cfg["PASSWORD_MAX_LENGTH"])
    if len(password) < low:
        raise PasswordRejected(f"Use at least {low} characters.")
    if len(password) > high:
        raise PasswordRejected(f"Use at most {high} characters.")
    folded = password.strip().lower()
    if folded in {username.strip().lower(), email.strip().lower()} - {""}:
        raise PasswordRejected("Your password cannot be your user name or email address.")
    if folded in _common():
        raise PasswordRejected("This password is too common and easy to guess. Choose another.")
