"""Bulk users for the benchmarks, written straight into the `users` table.

The table comes from `authserver init` (Alembic), so the columns are read from the database
itself: every NOT NULL column without a default must be one this module knows how to fill,
otherwise it stops and says which (the models are still moving). PostgreSQL gets COPY,
SQLite executemany in batches.
"""
from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone

import sqlalchemy as sa

FIRST = ("james mary john patricia robert jennifer michael linda william elizabeth david "
         "barbara richard susan joseph jessica thomas sarah charles karen christopher lisa "
         "daniel nancy matthew betty anthony margaret mark sandra donald ashley steven kimberly "
         "paul emily andrew donna joshua michelle kenneth carol kevin amanda brian melissa "
         "george deborah timothy stephanie ronald rebecca edward sharon jason laura jeffrey "
         "cynthia ryan kathleen jacob amy gary angela nicholas shirley eric anna jonathan "
         "brenda stephen pamela larry emma justin nicole scott helen brandon samantha benjamin "
         "katherine samuel christine gregory debra alexander rachel frank carolyn patrick "
         "janet raymond catherine jack maria dennis heather jerry diane tyler ruth aaron julie "
         "amara chidi kenji yuki mateo sofia lucas chloe omar fatima ivan olga pierre amelie "
         "hiroshi sakura rahul priya wei ling arjun ananya diego valentina").split()
LAST = ("smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez "
        "lopez gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson "
        "white harris sanchez clark ramirez lewis robinson walker young allen king wright scott "
        "torres nguyen hill flores green adams nelson baker hall rivera campbell mitchell carter "
        "roberts gomez phillips evans turner diaz parker cruz edwards collins reyes stewart "
        "morris morales murphy cook rogers gutierrez ortiz morgan cooper peterson bailey reed "
        "kelly howard ramos kim cox ward richardson watson brooks chavez wood james bennett "
        "gray mendoza ruiz hughes price alvarez castillo sanders patel myers long ross foster "
        "okafor tanaka suzuki novak kowalski dubois rossi muller schmidt larsen nakamura "
        "chen wang singh kumar haddad fischer weber").split()


def person(i: int, rng: random.Random, prefix: str = "") -> tuple[str, str, str]:
    """(username, email, display name) for user number i; unique by i."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    username = f"{prefix}{first}.{last}{i}"
    domain = rng.choice(("example.com", "example.org", "corp.example.net", "mail.example.io"))
    return username, f"{first[0]}{last}.{i}@{domain}", f"{first.title()} {last.title()}"


KNOWN = {"id", "sub", "username", "username_key", "email", "email_key", "name", "name_key",
         "password_hash", "state", "roles", "recovery_codes", "created_at", "password_changed_at",
         "temp_password_expires_at", "totp_secret", "last_login_at"}


def user_columns(engine: sa.Engine) -> list[str]:
    """The columns to write, after checking every required one is known here."""
    cols = sa.inspect(engine).get_columns("users")
    unknown = [c["name"] for c in cols if not c["nullable"] and c.get("default") is None
               and c.get("autoincrement") is not True and c["name"] not in KNOWN]
    if unknown:
        raise RuntimeError(f"users has NOT NULL columns bench/seed.py does not fill: {unknown}")
    names = {c["name"] for c in cols}
    return [n for n in ("sub", "username", "username_key", "email", "email_key", "name",
                        "name_key", "password_hash", "state", "roles", "recovery_codes",
                        "created_at") if n in names]


def rows(columns: list[str], start: int, count: int, *, prefix: str = "",
         password_hash: str | None = None, seed: int = 7) -> Iterator[tuple]:
    rng = random.Random(seed * 1_000_003 + start)
    created = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    for i in range(start, start + count):
        username, email, name = person(i, rng, prefix)
        values = {"sub": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                  "username": username, "username_key": username.lower(), "email": email,
                  "email_key": email.lower(), "name": name, "name_key": name.lower(),
                  "password_hash": password_hash, "state": "active", "roles": "",
                  "recovery_codes": "[]", "created_at": created}
        yield tuple(values[c] for c in columns)


def insert_users(url: str, count: int, *, prefix: str = "", password_hash: str | None = None,
                 batch: int = 50_000, progress=None) -> float:
    """Insert `count` users; returns the seconds it took."""
    engine = sa.create_engine(url)
    columns = user_columns(engine)
    started = time.monotonic()
    if engine.dialect.name == "postgresql":
        with engine.raw_connection() as raw:
            conn = raw.driver_connection
            with conn.cursor() as cur:
                for start in range(0, count, batch):
                    n = min(batch, count - start)
                    with cur.copy(f"COPY users ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in rows(columns, start, n, prefix=prefix,
                                        password_hash=password_hash):
                            copy.write_row(row)
                    conn.commit()
                    if progress:
                        progress(start + n)
            conn.execute("ANALYZE users")
            conn.commit()
    else:
        stmt = (f"INSERT INTO users ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})")
        with engine.raw_connection() as raw:
            cur = raw.cursor()
            for start in range(0, count, batch):
                n = min(batch, count - start)
                cur.executemany(stmt, list(rows(columns, start, n, prefix=prefix,
                                                password_hash=password_hash)))
                raw.commit()
                if progress:
                    progress(start + n)
            cur.execute("ANALYZE")
            raw.commit()
    engine.dispose()
    return time.monotonic() - started


def usernames(count: int, prefix: str = "", seed: int = 7, batch: int = 50_000) -> list[str]:
    """The user names insert_users() wrote, in order (same generator, same seed)."""
    out = []
    for start in range(0, count, batch):
        n = min(batch, count - start)
        rng = random.Random(seed * 1_000_003 + start)
        for i in range(start, start + n):
            out.append(person(i, rng, prefix)[0])
            rng.getrandbits(128)
    return out


def argon2_hash(password: str) -> str:
    """One hash at the app's default cost, reused for every seeded user."""
    from argon2 import PasswordHasher, Type
    from authserver.config import Defaults
    return PasswordHasher(time_cost=Defaults.PASSWORD_HASH_TIME_COST,
                          memory_cost=Defaults.PASSWORD_HASH_MEMORY_COST,
                          parallelism=Defaults.PASSWORD_HASH_PARALLELISM,
                          type=Type.ID).hash(password)


if __name__ == "__main__":  # a quick look at what the generator makes
    print(json.dumps([list(r) for r in rows(["username", "email", "name"], 0, 3)], indent=1))
