"""TOTP (RFC 6238) enrolment and verification with pyotp, plus single-use recovery codes."""
from __future__ import annotations

import pyotp

from .. import clock, security
from ..audit import security_event
from ..extensions import db
from .models import User

RECOVERY_CODES = 10


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(user: User, secret: str, issuer_name: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=issuer_name)


def enable(user: User, secret: str, code: str) -> list[str] | None:
    """Turn MFA on if the code matches the new secret; returns the recovery codes (shown once)."""
    if not pyotp.TOTP(secret).verify(code.strip(), for_time=clock.now(), valid_window=1):
        return None
    codes = [security.random_code(10) for _ in range(RECOVERY_CODES)]
    user.totp_secret = secret
    user.recovery_codes = [security.keyed_hash(c, "recovery") for c in codes]
    security_event("mfa_enabled", user_id=user.id)
    db.session.commit()
    return codes


def disable(user: User) -> None:
    user.totp_secret = None
    user.recovery_codes = []
    security_event("mfa_disabled", user_id=user.id)
    db.session.commit()


def verify(user: User, code: str) -> str | None:
    """Check a TOTP or a recovery code; returns the amr value, or None. Commits the outcome."""
    code = (code or "").strip().replace(" ", "")
    if user.totp_secret and code.isdigit() and len(code) == 6 and \
            pyotp.TOTP(user.totp_secret).verify(code, for_time=clock.now(), valid_window=1):
        return "otp"
    digest = security.keyed_hash(code, "recovery")
    remaining = [c for c in user.recovery_codes or [] if not security.equal(c, digest)]
    if code and len(remaining) < len(user.recovery_codes or []):
        user.recovery_codes = remaining
        security_event("mfa_recovery_code_used", user_id=user.id)
        db.session.commit()
        return "otp"
    security_event("mfa_failed", user_id=user.id)
    db.session.commit()
    return None
