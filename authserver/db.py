"""Column types and statements shared by every model."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.types import DateTime, TypeDecorator


class UTCDateTime(TypeDecorator):
    """Naive UTC in the database, aware UTC in Python (Warehouse's TZDateTime idea)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


def delete_in_batches(session, model, condition, batch: int = 1000) -> int:
    """Delete the rows matching `condition`, `batch` at a time with a commit after each, so a
    big purge never holds long locks on a busy table. Returns how many went."""
    key = model.__mapper__.primary_key[0]
    total = 0
    while True:
        ids = session.scalars(select(key).where(condition).limit(batch)).all()
        if not ids:
            return total
        session.execute(delete(model).where(key.in_(ids)).execution_options(
            synchronize_session=False))
        session.commit()
        total += len(ids)


def insert_unless_present(session, model, index: list[str], **values) -> None:
    """INSERT ... ON CONFLICT (index) DO NOTHING, in the session's transaction: the row exists
    afterwards whichever of several concurrent requests created it (PostgreSQL and SQLite)."""
    session.execute(dialect_insert(session, model).values(**values).on_conflict_do_nothing(
        index_elements=index))


def dialect_insert(session, model):
    """INSERT for the session's database (PostgreSQL or SQLite), with their shared ON CONFLICT
    DO NOTHING / DO UPDATE ... WHERE clauses."""
    insert_fn = {"postgresql": pg_insert, "sqlite": sqlite_insert}[
        session.get_bind().dialect.name]
    return insert_fn(model)


def unreachable(exc: OperationalError) -> str:
    """One line for a database that could not be used at start (down, wrong address, refused
    login): the driver's first line, which names the host and port but no password."""
    first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return f"the database could not be used: {first}"
