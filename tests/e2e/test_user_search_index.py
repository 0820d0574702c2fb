"""User search (`accounts.search`): what a term matches (contains for 3+ characters, begins
with for 1-2), the order (account creation), pages that are stable whichever way a page is
found (SQLite's FTS5 trigram table, the walk in id order, the indexes), and an index that
follows updates and deletes."""
from __future__ import annotations

import pytest
from sqlalchemy import text
from support import is_postgres, make_user

from authserver.accounts import search
from authserver.accounts import services as accounts
from authserver.accounts.models import User
from authserver.extensions import db


def found(q: str) -> list[str]:
    rows, total = accounts.find_users(q, limit=100)
    assert total == len(rows)
    return [u.username for u in rows]


@pytest.fixture
def people(app):
    for i in range(30):
        make_user(app, f"user{i:02d}", name=f"Common Person {i}")
    make_user(app, "quokka.vex", email="qv@rare-domain.example", name="Zanzibar Quill")
    make_user(app, "a_b.c", email="odd@example.com", name='Say "Hi" 100%')
    make_user(app, "axb.c", email="axb@example.com", name="Lookalike")


def crowd(ctx, n: int = 90) -> list[User]:
    """n users without passwords, in one commit: every third is a william, the rest
    scattered among other names; some email domains are rare."""
    for i in range(n):
        first = "william" if i % 3 == 0 else ("yusuf" if i % 7 == 1 else f"ann{i % 5}")
        domain = "rare.example" if i in (4, 50, 88) else "example.com"
        accounts.new_user(f"{first}.{i:03d}", f"{first[:2]}{i}@{domain}",
                          f"{first.title()} Person{i}")
    db.session.commit()
    return list(db.session.scalars(db.select(User).order_by(User.id)))


def expected(users: list[User], q: str) -> list[int]:
    """The rule, evaluated in Python over every user, in creation order."""
    q = search.clean_query(q)

    def hit(key: str) -> bool:
        return q in key if len(q) >= 3 else key.startswith(q)
    return [u.id for u in users if hit(u.username_key) or hit(u.email_key) or hit(u.name_key)]


TERMS = ["william.", "ann", "person1", "rare.exa", "yusuf", "wi", "y", "an", "zq", "nobody",
         "example.com"]


def test_rare_substrings_of_each_column_are_found_in_any_case(ctx, people):
    assert found("KKA.V") == ["quokka.vex"]  # user name
    assert found("re-dom") == ["quokka.vex"]  # email
    assert found("zibar q") == ["quokka.vex"]  # display name
    assert found("person 2") == ["user02", "user20", "user21", "user22", "user23", "user24",
                                 "user25", "user26", "user27", "user28", "user29"]
    assert found("nowhere-at-all") == []


def test_wildcards_and_quotes_are_plain_text(ctx, people):
    assert found("a_b") == ["a_b.c"]
    assert found("00%") == ["a_b.c"]
    assert found('"hi"') == ["a_b.c"]
    assert found("___") == []
    assert found("a_") == ["a_b.c"]  # a prefix: `_` is no wildcard there either


def test_a_term_of_one_or_two_characters_matches_the_beginning_of_a_column(ctx, people):
    assert found("qu") == ["quokka.vex"]  # the user name begins with it
    assert found("QV") == ["quokka.vex"]  # the email address
    assert found("z") == ["quokka.vex"]  # the display name ("Zanzibar Quill")
    assert found("lo") == ["axb.c"]
    assert found("ka") == [] and found("%") == []  # inside a column, not at its start
    assert found("us") == [f"user{i:02d}" for i in range(30)]


def test_updates_and_deletes_are_followed(ctx, people):
    user = db.session.scalar(db.select(User).where(User.username_key == "quokka.vex"))
    user.name, user.name_key = "Plain Name", "plain name"
    db.session.commit()
    assert found("zanzibar") == [] and found("plain nam") == ["quokka.vex"]
    assert found("re-dom") == ["quokka.vex"]  # the untouched columns still indexed
    assert found("z") == [] and found("pl") == ["quokka.vex"]

    db.session.delete(user)
    db.session.commit()
    assert found("plain nam") == [] and found("re-dom") == [] and found("pl") == []
    make_user(ctx, "zanzibar")
    assert found("anzib") == ["zanzibar"]


# Each setting forces one way of finding a page: the walk in id order alone (a window that
# holds everyone), the walk that gives up at once for the indexes, and the longer walk that
# the matches seen in a short window ask for.
PATHS = {"walk": {"WINDOW": 10_000}, "indexes": {"WINDOW": 4, "MAX_WALK": 0},
         "longer walk": {"WINDOW": 4, "MAX_WALK": 10_000}}


@pytest.mark.parametrize("path", PATHS)
def test_every_way_of_finding_a_page_gives_the_rule_in_creation_order(ctx, path,
                                                                      monkeypatch):
    users = crowd(ctx)
    for name, value in PATHS[path].items():
        monkeypatch.setattr(search, name, value)
    for q in TERMS:
        assert search.page_ids(q, limit=200) == expected(users, q), q


@pytest.mark.parametrize("path", PATHS)
def test_pages_of_a_dense_term_are_stable_and_cover_every_match_once(ctx, path, monkeypatch):
    users = crowd(ctx)
    for name, value in PATHS[path].items():
        monkeypatch.setattr(search, name, value)
    for q in ("william.", "ann", "wi", "example.com", ""):
        everyone = expected(users, q) if q else [u.id for u in users]
        by_offset = [search.page_ids(q, limit=7, offset=o) for o in range(0, 100, 7)]
        assert sum(by_offset, []) == everyone, q
        by_key, after = [], 0
        while page := search.page_ids(q, limit=7, after=after):
            by_key += page
            after = page[-1]
        assert by_key == everyone, q
        assert search.page_ids(q, limit=7, offset=14) == search.page_ids(q, limit=7,
                                                                         offset=14)


def test_counts_stop_at_the_cap(ctx, monkeypatch):
    users = crowd(ctx)
    assert search.count("william.", cap=100) == len(expected(users, "william.")) == 30
    assert search.count("william.", cap=10) == 11  # more than 10
    monkeypatch.setattr(accounts, "COUNT_CAP", 10)
    rows, total = accounts.find_users("william.", limit=5)
    assert [u.username for u in rows] == [f"william.{i:03d}" for i in range(0, 15, 3)]
    assert total == 11


def test_users_list_says_more_than_when_the_count_is_capped(app, runner, monkeypatch):
    with app.app_context():
        crowd(app, 30)
    monkeypatch.setattr(accounts, "COUNT_CAP", 5)
    out = runner.invoke(args=["users", "list", "--search", "william.", "--limit", "3"]).output
    assert "william.000" in out and "william.006" in out and "william.009" not in out
    assert "3 of more than 5 users" in out
    out = runner.invoke(args=["users", "list", "--search", "rare.exa"]).output
    assert "1 of 1 users" in out  # only i == 4 of the first 30 (rare.example)


@pytest.mark.skipif(is_postgres(), reason="the FTS5 table is SQLite's index")
def test_sqlite_pages_a_term_in_rowid_order_straight_from_the_trigram_table(ctx, people):
    sql = search._fts_page("zibar q", 0).limit(21).compile(
        db.engine, compile_kwargs={"literal_binds": True})
    plan = " / ".join(r[-1] for r in db.session.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
    assert "VIRTUAL TABLE INDEX" in plan and "TEMP B-TREE" not in plan, plan  # no sort
    assert search.page_ids("zibar q", limit=5) == [
        db.session.scalar(db.select(User.id).where(User.username_key == "quokka.vex"))]
    db.session.execute(text("INSERT INTO users_search(users_search, rank) "
                            "VALUES ('integrity-check', 1)"))  # raises if it drifted from users


def _plan(stmt) -> str:
    sql = stmt.compile(db.engine, compile_kwargs={"literal_binds": True})
    explain = "EXPLAIN QUERY PLAN " if not is_postgres() else "EXPLAIN "
    return "\n".join(str(r[-1]) for r in db.session.execute(text(explain + str(sql))))


def test_the_indexes_serve_a_rare_term_of_any_length(ctx, people):
    if is_postgres():
        db.session.execute(text("SET LOCAL enable_seqscan = off"))
    rare = _plan(db.select(User.id).where(db.or_(*search._conditions("zibar q", User))))
    short = _plan(db.select(User.id).where(db.or_(*search._conditions("zq", User))))
    if is_postgres():
        assert "_trgm" in rare, rare
        assert "users_search_prefix_name" in short and "users_search_prefix_email" in short, short
    else:
        assert "name_key>" in short and "SCAN users" not in short, short


def test_a_prefix_ends_at_the_next_code_point_skipping_surrogates():
    assert search._prefix_end("yu") == "yv"
    assert search._prefix_end("a\U0010ffff") == "b"  # no code point above: the one before
    assert search._prefix_end("\U0010ffff") is None  # everything from here on
    assert search._prefix_end("\ud7ff") == "\ue000"  # UTF-8 cannot hold a surrogate
