"""Partial, case-insensitive user search: the one rule behind the Users module, the admin API
and `users list --search`.

A user matches when q (lowercased, as plain text: `%` and `_` are not wildcards) is part of
their user name, email or display name (the lowercase `*_key` columns). The rule is always
the `LIKE '%q%'` below; the indexes only narrow where it is evaluated:

- PostgreSQL: the pg_trgm GIN indexes on the three key columns serve the LIKE itself.
- SQLite: the FTS5 table `users_search` (trigram tokenizer, kept by triggers on `users`,
  migration speed_users_search) finds the ids of users containing q, for q of 3 characters
  or more. When it finds few, the LIKE runs on those rows only; when q is common (more than
  CANDIDATE_CAP matches) or shorter than 3 characters, the LIKE scans users in user-name
  order, which reaches a page of matches quickly exactly because they are common.
"""
from __future__ import annotations

from sqlalchemy import ColumnElement, and_, or_, text

from ..extensions import db
from .models import User

MAX_QUERY = 100
FTS_TABLE = "users_search"
MIN_INDEXED = 3  # a trigram index knows nothing of shorter terms
CANDIDATE_CAP = 2000

_CANDIDATES = text(f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :phrase LIMIT :cap")


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
    ids = _sqlite_candidates(q)
    return rule if ids is None else and_(User.id.in_(ids), rule)


def _sqlite_candidates(q: str) -> list[int] | None:
    """Ids of the users whose key columns contain q, from the trigram index; None when the
    index cannot help (not SQLite, q too short, or q too common to be worth listing)."""
    if len(q) < MIN_INDEXED or db.session.get_bind().dialect.name != "sqlite":
        return None
    phrase = '"' + q.replace('"', '""') + '"'  # an FTS5 string: every character is literal
    ids = db.session.scalars(_CANDIDATES, {"phrase": phrase, "cap": CANDIDATE_CAP + 1}).all()
    return None if len(ids) > CANDIDATE_CAP else list(ids)


def is_search_index(name: str | None) -> bool:
    """The FTS5 table and its shadow tables: kept by the migration, not by the models."""
    return bool(name) and (name == FTS_TABLE or name.startswith(FTS_TABLE + "_"))
