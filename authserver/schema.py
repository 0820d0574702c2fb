"""Bring the schema up to date through Alembic, once, even when many processes start at once."""
from __future__ import annotations

import fcntl
import os

from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import text

from .extensions import db

PG_LOCK_ID = 0x61757468  # "auth"


def init_schema(app: Flask) -> None:
    """Apply pending migrations under a lock (an advisory lock on PostgreSQL, flock on SQLite)."""
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": PG_LOCK_ID})
                try:
                    upgrade()
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": PG_LOCK_ID})
                    conn.commit()
        else:
            lock_path = os.path.join(app.instance_path, ".schema.lock")
            with open(lock_path, "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                upgrade()
        # No pooled connection outlives this call: a server started with
        # `gunicorn --preload` must not hand one socket to every forked worker.
        if db.engine.url.database not in (None, "", ":memory:"):
            db.engine.dispose()
