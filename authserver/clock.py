"""The one place that reads the wall clock (freezegun patches it in tests)."""
from datetime import datetime, timezone


def now() -> datetime:
    return datetime.now(timezone.utc)


def timestamp() -> int:
    """Seconds since the epoch, as JWT claims want them."""
    return int(now().timestamp())
