"""Security events: one table, one structured log line each."""
from __future__ import annotations

import json
import logging
from datetime import datetime

from flask import g, has_request_context, request
from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from . import clock
from .db import UTCDateTime
from .extensions import db
from .observability import count_event

log = logging.getLogger("authserver.audit")

_SECRET_FIELDS = {"password", "code", "token", "secret", "refresh_token", "access_token"}


class SecurityEvent(db.Model):
    __tablename__ = "security_events"
    __table_args__ = (Index("ix_security_events_user_created", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    client_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)


def security_event(name: str, *, user_id: int | None = None, actor_id: int | None = None,
                   client_id: str | None = None, **data) -> SecurityEvent:
    """Record an event in the caller's transaction and log it; secrets are never recorded."""
    clean = {k: v for k, v in data.items() if k not in _SECRET_FIELDS}
    ip = request.remote_addr if has_request_context() else None
    event = SecurityEvent(name=name, user_id=user_id, actor_id=actor_id, client_id=client_id,
                          ip=ip, data=clean, created_at=clock.now())
    db.session.add(event)
    line = {"event": name, "user_id": user_id, "actor_id": actor_id, "client_id": client_id,
            "ip": ip, **clean}
    if has_request_context() and "request_id" in g:
        line["request_id"] = g.request_id
    # The JSON formatter merges `fields` into its own line (no JSON inside JSON); other
    # handlers still get a readable message.
    log.info("%s %s", name, json.dumps(line, default=str, sort_keys=True),
             extra={"fields": line})
    count_event(name)
    return event
