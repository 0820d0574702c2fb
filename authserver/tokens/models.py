"""Refresh tokens (hashes only, in rotating families) and revoked access-token ids."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .. import clock
from ..accounts.models import BrowserSession, User
from ..db import UTCDateTime
from ..extensions import db


class RefreshToken(db.Model):
    """One link of a rotating family; the family dies at family_expires_at, set once at login."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    family_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    client_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("browser_sessions.id", ondelete="SET NULL"), index=True)
    scope: Mapped[str] = mapped_column(Text, default="")
    auth_time: Mapped[int] = mapped_column(Integer)
    amr: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Loaded with the token in one query by services.usable_refresh_token.
    user: Mapped[User] = relationship()
    session: Mapped[BrowserSession | None] = relationship()

    # --- Authlib TokenMixin ---
    def check_client(self, client) -> bool:
        return self.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(0, int((self.family_expires_at - clock.now()).total_seconds()))

    def is_expired(self) -> bool:
        return clock.now() >= self.family_expires_at

    def is_revoked(self) -> bool:
        """A rotated token is spent, so it reads as revoked to introspection."""
        return self.revoked_at is not None or self.rotated_at is not None


class RevokedAccessToken(db.Model):
    """A JWT access token revoked before its expiry (RFC 7009); kept until it would expire."""

    __tablename__ = "revoked_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class SigningKey(db.Model):
    """One key of the issuer's signing key set, shared by every node that uses this database.

    The private key (PKCS#8 PEM) is sealed under the secret key (sealing.py), so a dump of
    the table alone yields no key. Status is computed from the times, as in keyset.py.
    """

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(100), primary_key=True)
    alg: Mapped[str] = mapped_column(String(8))
    private_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    activates_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class KeySetState(db.Model):
    """The one row (id 1) that says the key set exists; its generation counts every change.

    Its primary key makes two racing first starts create one set; every change takes its
    row lock first and bumps the generation, which is all a node reads to know it is current.
    """

    __tablename__ = "key_set"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
