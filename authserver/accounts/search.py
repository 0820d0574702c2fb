"""Partial, case-insensitive user search: the one rule behind the Users module, the admin API
and `users list --search`.

A user matches when q (lowercased, as plain text: `%` and `_` are not wildcards) is part of
their user name, email or display name (the lowercase `*_key` columns). The rule is always
the `LIKE '%q%'` below; the indexes only narrow where it is evaluated:

- PostgreSQL: the pg_trgm GIN indexes on the three key columns serve the LIKE itself.
- SQLite: the FTS5 table `users_search` (trigram tokenizer, kept by triggers on `users`,
  migration speed_users_search) finds the ids of users containing q, for q of 3 characters
  or more. Up to SORT_CAP matches, those rows are fetched by id and sorted; up to
  CANDIDATE_CAP (2% of a million) the user-name index is walked in order, testing
  membership, until a page is full; when q is more common than that, or shorter than 3
  characters, the LIKE scans users in user-name order, which reaches a page of matches
  quickly because they are common. See docs/performance.md for the slow cases left.
"""
from __future__ import annotations

from sqlalchemy import ColumnElement, Select, and_, column, or_, select, table, text

from ..extensions import db
from .models import User

MAX_QUERY = 100
FTS_TABLE = "users_search"
MIN_INDEXED = 3  # a trigram index knows nothing of shorter terms
CANDIDATE_CAP = 20_000  # more matches than this: the plain scan finds a page at once
SORT_CAP = 2_000  # up to this many: fetched by id and sorted; more: the user-name index walk

_COUNT = text(f"SELECT count(*) FROM (SELECT 1 FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :phrase "
              "LIMIT :cap)")
_FTS = table(FTS_TABLE, column("rowid"))


def clean_query(q: str | None) -> str:
    """The search text as compared: no control characters (PostgreSQL refuses NUL), lowercase."""
    text_ = "".join(c for c in (q or "") if ord(c) >= 32)
    return text_.strip().lower()[:MAX_QUERY]


def matching(q: str | None) -> ColumnElement[bool] | None:
    """The WHERE clause for users matching q, or None for an empty query (everyone)."""
    q = clean_query(q)
    if not q:
        return None
    like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rule = or_(User.username_key.like(like, escape="\\"), User.email_key.like(like, escape="\\"),
               User.name_key.like(like, escape="\\"))
    found = _sqlite_candidates(q)
    if found is None:
        return rule
    ids, count = found
    if count <= SORT_CAP:  # few: fetch them by id, sort those
        return and_(User.id.in_(ids), rule)
    # Many: walk the user-name index in order and test membership (`+ 0` keeps SQLite
    # from driving the query by id), stopping at a page of matches.
    return and_((User.id + 0).in_(ids), rule)


def _sqlite_candidates(q: str) -> tuple[Select, int] | None:
    """The ids of the users whose key columns contain q, from the trigram index, as a
    subquery, and how many; None when the index cannot help (not SQLite, q too short, q too
    common)."""
    if len(q) < MIN_INDEXED or db.session.get_bind().dialect.name != "sqlite":
        return None
    phrase = '"' + q.replace('"', '""') + '"'  # an FTS5 string: every character is literal
    count = db.session.scalar(_COUNT, {"phrase": phrase, "cap": CANDIDATE_CAP + 1})
    if count > CANDIDATE_CAP:
        return None
    return select(_FTS.c.rowid).where(text(f"{FTS_TABLE} MATCH :phrase").bindparams(
        phrase=phrase)), count


def is_search_index(name: str | None) -> bool:
    """The FTS5 table and its shadow tables: kept by the migration, not by the models."""
    return bool(name) and (name == FTS_TABLE or name.startswith(FTS_TABLE + "_"))
