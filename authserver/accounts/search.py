"""User search: the one rule behind the Users module, the admin API and `users list --search`.

What matches q (lowercased, control characters dropped, at most 100 characters; `%`, `_` and
`"` are plain characters), in the lowercase `*_key` columns:

- q of 3 characters or more: the user name, the email address or the display name
  *contains* q;
- q of 1 or 2 characters: one of them *begins with* q (a trigram index knows nothing of
  shorter terms, and "contains one letter" would be most users).

Results come in account-creation order (ascending id): every index used here can walk that
order, so a page is found without counting or sorting every match, however common q is.
The rule (`_conditions`) is always applied to the rows; the indexes only decide which rows
are looked at:

- SQLite, q of 3+: the FTS5 table `users_search` (trigram tokenizer, kept by triggers,
  migration speed_users_search) yields the rowids containing q in id order; the page is the
  first LIMIT of them. No count, no sort, rare or common.
- Otherwise (PostgreSQL, or a short q on SQLite): the next WINDOW users in id order are
  tested; a common q fills the page there. When it does not, and the matches seen there say
  a walk of at most MAX_WALK users would, that walk; else q is rare, and the indexes give
  every match's id (pg_trgm GIN for 3+, B-tree ranges on the three key columns for a short
  q, migration search_prefix_indexes on PostgreSQL), few enough to sort.

Counting is capped (`count`): a page says "more than N", never counts a million matches.
"""
from __future__ import annotations

from sqlalchemy import ColumnElement, Integer, Select, and_, column, or_, select, table, text, union

from ..extensions import db
from .models import User

MAX_QUERY = 100
FTS_TABLE = "users_search"
MIN_INDEXED = 3  # a trigram index knows nothing of shorter terms
WINDOW = 5_000  # users tested in id order before asking the indexes
MAX_WALK = 50_000  # the longest walk in id order that the matches seen may ask for
_FTS = table(FTS_TABLE, column("rowid", Integer))
_MATCH = text(f"{FTS_TABLE} MATCH :phrase")


def clean_query(q: str | None) -> str:
    """The search text as compared: no control characters (PostgreSQL refuses NUL), lowercase."""
    text_ = "".join(c for c in (q or "") if ord(c) >= 32)
    return text_.strip().lower()[:MAX_QUERY]


def is_prefix_term(q: str | None) -> bool:
    """q is 1 or 2 characters: it matches the beginning of a column, not any part."""
    return 0 < len(clean_query(q)) < MIN_INDEXED


def find(q: str | None, *, limit: int, offset: int = 0, after: int = 0) -> list[User]:
    """Users matching q in id order: `limit` of them, skipping `offset` matches after the
    user id `after` (0: from the first)."""
    ids = page_ids(q, limit=limit, offset=offset, after=after)
    if not ids:
        return []
    return list(db.session.scalars(select(User).where(User.id.in_(ids)).order_by(User.id)))


def count(q: str | None, *, cap: int) -> int:
    """How many users match q, up to cap + 1 (more than cap: the caller says "more than")."""
    return len(page_ids(q, limit=cap + 1))


def page_ids(q: str | None, *, limit: int, offset: int = 0, after: int = 0) -> list[int]:
    """The ids of one page of users matching q, in id order (see the module's docstring)."""
    q = clean_query(q)
    need = offset + limit
    if not q:
        return list(db.session.scalars(select(User.id).where(User.id > after)
                                       .order_by(User.id).limit(limit).offset(offset)))
    if not is_prefix_term(q) and _dialect() == "sqlite":
        return list(db.session.scalars(_fts_page(q, after).limit(limit).offset(offset)))
    ids = _walk(q, after, need, WINDOW)
    if 0 < len(ids) < need:  # the window was too short for this density: a longer walk?
        window = WINDOW * need * 2 // len(ids)
        if window <= MAX_WALK:
            ids = _walk(q, after, need, window)
    if len(ids) < need:  # rare in id order: from the indexes, every match (few), sorted
        ids = _indexed(q, after, need)
    return ids[offset:]


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def _conditions(q: str, cols) -> list[ColumnElement[bool]]:
    """The rule, one condition per key column of `cols` (User, or a subquery's columns)."""
    keys = (cols.username_key, cols.email_key, cols.name_key)
    if not is_prefix_term(q):
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return [key.like(like, escape="\\") for key in keys]
    # Begins with q: a range in code-point order, which is byte order in UTF-8: SQLite's
    # BINARY collation, and PostgreSQL's "C" (the collation of its prefix indexes).
    if _dialect() == "postgresql":
        keys = tuple(key.collate("C") for key in keys)
    upper = _prefix_end(q)
    return [and_(key >= q, key < upper) if upper is not None else key >= q for key in keys]


def _prefix_end(q: str) -> str | None:
    """The least string above every string that begins with q (None: there is none)."""
    while q:
        last = ord(q[-1]) + 1
        if last <= 0x10FFFF:
            return q[:-1] + chr(0xE000 if 0xD800 <= last <= 0xDFFF else last)  # no surrogates
        q = q[:-1]
    return None


def _fts_page(q: str, after: int) -> Select:
    """SQLite: matching ids in rowid order straight from the trigram index (q of 3+)."""
    phrase = '"' + q.replace('"', '""') + '"'  # an FTS5 string: every character is literal
    return (select(User.id).select_from(_FTS).join(User, User.id == _FTS.c.rowid)
            .where(_MATCH.bindparams(phrase=phrase), _FTS.c.rowid > after,
                   or_(*_conditions(q, User)))
            .order_by(_FTS.c.rowid))


def _walk(q: str, after: int, need: int, window: int) -> list[int]:
    """The first `need` matches among the next `window` users in id order."""
    walked = (select(User.id, User.username_key, User.email_key, User.name_key)
              .where(User.id > after).order_by(User.id).limit(window).subquery("walked"))
    return list(db.session.scalars(select(walked.c.id).where(or_(*_conditions(q, walked.c)))
                                   .order_by(walked.c.id).limit(need)))


def _indexed(q: str, after: int, need: int) -> list[int]:
    """Every match's id from the indexes (one scan per key column), then the first `need`
    after `after`: for a q that is rare, so there are few to sort."""
    found = union(*(select(User.id).where(cond) for cond in _conditions(q, User)))
    found = found.cte("found").prefix_with("MATERIALIZED")  # planned alone: by the indexes
    return list(db.session.scalars(select(found.c.id).where(found.c.id > after)
                                   .order_by(found.c.id).limit(need)))


def is_search_index(name: str | None) -> bool:
    """The FTS5 table, its shadow tables and the prefix indexes: kept by the migrations, not
    by the models (autogenerate leaves them alone)."""
    return bool(name) and (name == FTS_TABLE or name.startswith(FTS_TABLE + "_"))
