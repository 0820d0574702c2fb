"""Verification codes (keyed hashes only) and the send log the resend limits read."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .. import clock
from ..db import UTCDateTime
from ..extensions import db


class ResetCode(db.Model):
    __tablename__ = "reset_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    failed_tries: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class CodeSend(db.Model):
    """A log keyed on the typed name (hashed), so names without an account get the same answers.

    A row is one *Send code* / *Resend code* (purpose "code-send", read by the resend limits),
    or one wrong try on a name that has no code to check (purpose "code-try", read by
    codes.reject_without_code); the purpose is part of the keyed hash.
    """

    __tablename__ = "code_sends"
    __table_args__ = (Index("ix_code_sends_key_sent", "key_hash", "sent_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
