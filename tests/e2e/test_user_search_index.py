"""User search (`accounts.search`): rare substrings are found through the index (SQLite's
FTS5 trigram table, PostgreSQL's pg_trgm), and the answers follow updates and deletes."""
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


def test_rare_substrings_of_each_column_are_found_in_any_case(ctx, people):
    assert found("KKA.V") == ["quokka.vex"]  # user name
    assert found("re-dom") == ["quokka.vex"]  # email
    assert found("zibar q") == ["quokka.vex"]  # display name
    assert found("person 2") == ["user02", "user20", "user21", "user22", "user23", "user24",
                                 "user25", "user26", "user27", "user28", "user29"]
    assert found("nowhere-at-all") == []


def test_wildcards_quotes_and_short_terms_are_plain_text(ctx, people):
    assert found("a_b") == ["a_b.c"]
    assert found("00%") == ["a_b.c"]
    assert found("%") == ["a_b.c"]
    assert found('"hi"') == ["a_b.c"]
    assert found("___") == []
    assert found("qu") == ["quokka.vex"]  # under 3 characters: the scan
    assert found("z") == ["quokka.vex"]


def test_updates_and_deletes_are_followed(ctx, people):
    user = db.session.scalar(db.select(User).where(User.username_key == "quokka.vex"))
    user.name, user.name_key = "Plain Name", "plain name"
    db.session.commit()
    assert found("zanzibar") == [] and found("plain nam") == ["quokka.vex"]
    assert found("re-dom") == ["quokka.vex"]  # the untouched columns still indexed

    db.session.delete(user)
    db.session.commit()
    assert found("plain nam") == [] and found("re-dom") == []
    make_user(ctx, "zanzibar")
    assert found("anzib") == ["zanzibar"]


def test_a_common_term_gives_the_same_answer_without_the_candidate_list(ctx, people,
                                                                        monkeypatch):
    expected = found("common")
    assert len(expected) == 30
    monkeypatch.setattr(search, "SORT_CAP", 5)  # the index walk
    assert found("common") == expected
    assert found("zibar") == ["quokka.vex"]
    monkeypatch.setattr(search, "CANDIDATE_CAP", 5)  # the plain scan
    assert found("common") == expected
    assert found("zibar") == ["quokka.vex"]


@pytest.mark.skipif(is_postgres(), reason="the FTS5 table is SQLite's index")
def test_sqlite_answers_rare_terms_from_the_trigram_table(ctx, people):
    subquery, count = search._sqlite_candidates("zibar q")
    ids = db.session.scalars(subquery).all()
    assert count == 1
    assert ids == [db.session.scalar(db.select(User.id).where(User.username_key == "quokka.vex"))]
    assert search._sqlite_candidates("qu") is None  # too short for trigrams
    db.session.execute(text("INSERT INTO users_search(users_search, rank) "
                            "VALUES ('integrity-check', 1)"))  # raises if it drifted from users


@pytest.mark.skipif(not is_postgres(), reason="pg_trgm is PostgreSQL's index")
def test_postgres_plans_the_search_on_the_trigram_indexes(ctx, people):
    db.session.execute(text("SET LOCAL enable_seqscan = off"))
    stmt = db.select(User.id).where(search.matching("zibar q"))
    sql = stmt.compile(db.engine, compile_kwargs={"literal_binds": True})
    plan = "\n".join(db.session.scalars(text(f"EXPLAIN {sql}")))
    assert "_trgm" in plan, plan
