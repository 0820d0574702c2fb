"""codes.py: 6 CSPRNG digits kept only as a keyed hash, 60 minutes, 5 wrong tries, newest
wins, single use; and the same answers for a name that has no code to check."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from authserver.accounts import services as accounts
from authserver.extensions import db
from authserver.passwords import codes
from authserver.passwords.codes import CodeDead, CodeRejected
from authserver.passwords.models import CodeSend, ResetCode

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def user(ctx):
    user = accounts.new_user("alice", "alice@example.com")
    accounts.set_password(user, "correct horse battery staple")
    db.session.commit()
    return user


def issue(user, now=T0) -> str:
    code = codes.issue_code(user, now)
    db.session.commit()
    return code


def outcome(fn, *args) -> str:
    """"ok", "rejected" or "dead", committing what the call recorded, like the service does."""
    try:
        fn(*args)
    except CodeDead:
        result = "dead"
    except CodeRejected:
        result = "rejected"
    else:
        result = "ok"
    db.session.commit()
    return result


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_a_code_is_six_digits_stored_only_as_a_keyed_hash(user):
    code = issue(user)
    assert re.fullmatch(r"[0-9]{6}", code)
    row = db.session.scalars(select(ResetCode)).one()
    assert code not in row.code_hash and len(row.code_hash) == 64
    assert row.expires_at == T0 + timedelta(minutes=60)


def test_the_hash_depends_on_the_server_secret(user, app):
    code = issue(user)
    stored = db.session.scalars(select(ResetCode)).one().code_hash
    app.config["SECRET_KEY"] = "another-secret-key-0123456789"
    app.extensions.pop("authserver.hash_key", None)
    assert codes._digest(user.id, code) != stored


@pytest.mark.parametrize("after, expected", [(timedelta(minutes=59, seconds=59), "ok"),
                                             (timedelta(minutes=60), "rejected"),
                                             (timedelta(minutes=61), "rejected")])
def test_a_code_lives_60_minutes(user, after, expected):
    code = issue(user)
    assert outcome(codes.check_code, user, code, T0 + after) == expected


def test_five_wrong_tries_kill_the_code_and_the_sixth_is_refused_even_if_right(user):
    code = issue(user)
    seen = [outcome(codes.check_code, user, wrong(code), T0) for _ in range(5)]
    assert seen == ["rejected"] * 4 + ["dead"]
    assert outcome(codes.check_code, user, code, T0) == "dead"
    assert db.session.scalars(select(ResetCode)).one().failed_tries == 5


def test_an_expired_dead_code_reads_as_not_valid(user):
    code = issue(user)
    for _ in range(5):
        outcome(codes.check_code, user, wrong(code), T0)
    assert outcome(codes.check_code, user, code, T0 + timedelta(minutes=61)) == "rejected"


def test_a_new_code_supersedes_the_old_one(user, monkeypatch):
    fixed = iter(["111111", "222222"])
    monkeypatch.setattr(codes.security, "random_code", lambda digits=6: next(fixed))
    issue(user)
    issue(user, T0 + timedelta(minutes=1))
    assert outcome(codes.check_code, user, "111111", T0 + timedelta(minutes=2)) == "rejected"
    assert outcome(codes.check_code, user, "222222", T0 + timedelta(minutes=2)) == "ok"


def test_a_new_code_starts_with_five_fresh_tries(user):
    old = issue(user)
    for _ in range(5):
        outcome(codes.check_code, user, wrong(old), T0)
    new = issue(user, T0 + timedelta(minutes=1))
    assert outcome(codes.check_code, user, new, T0 + timedelta(minutes=2)) == "ok"


def test_a_code_works_once(user):
    code = issue(user)
    assert outcome(codes.check_code, user, code, T0) == "ok"
    assert outcome(codes.check_code, user, code, T0) == "rejected"


def test_surrounding_spaces_are_ignored(user):
    code = issue(user)
    assert outcome(codes.check_code, user, f"  {code} ", T0) == "ok"


def test_void_codes_ends_every_live_code(user):
    code = issue(user)
    codes.void_codes(user, T0)
    db.session.commit()
    assert outcome(codes.check_code, user, code, T0) == "rejected"


def test_no_code_at_all_is_not_valid_forever(user):
    assert {outcome(codes.check_code, user, "123456", T0) for _ in range(7)} == {"rejected"}


def sent(login: str, at: datetime) -> None:
    db.session.add(CodeSend(key_hash=codes.send_key(login), sent_at=at))
    db.session.commit()


def test_a_name_never_sent_to_is_not_valid_forever(ctx):
    assert {outcome(codes.reject_without_code, "nobody", T0) for _ in range(7)} == {"rejected"}


def test_a_name_without_a_code_dies_on_the_fifth_try_like_a_real_code(ctx):
    sent("nobody", T0)
    seen = [outcome(codes.reject_without_code, "nobody", T0) for _ in range(6)]
    assert seen == ["rejected"] * 4 + ["dead", "dead"]


def test_a_name_without_a_code_counts_tries_on_the_normalised_name(ctx):
    sent("Nobody", T0)
    for name in ["nobody", " NOBODY ", "nobody", "NoBody"]:
        assert outcome(codes.reject_without_code, name, T0) == "rejected"
    assert outcome(codes.reject_without_code, "nobody", T0) == "dead"
    assert outcome(codes.reject_without_code, "someone-else", T0) == "rejected"


def test_a_new_send_revives_a_name_without_a_code(ctx):
    sent("nobody", T0)
    for _ in range(5):
        outcome(codes.reject_without_code, "nobody", T0)
    sent("nobody", T0 + timedelta(minutes=1))
    assert outcome(codes.reject_without_code, "nobody", T0 + timedelta(minutes=1)) == "rejected"


def test_a_name_without_a_code_stops_counting_60_minutes_after_its_last_send(ctx):
    sent("nobody", T0)
    for _ in range(5):
        outcome(codes.reject_without_code, "nobody", T0)
    assert outcome(codes.reject_without_code, "nobody", T0 + timedelta(minutes=60)) == "rejected"


def test_tries_are_stored_as_keyed_hashes_apart_from_sends(ctx):
    sent("nobody", T0)
    outcome(codes.reject_without_code, "nobody", T0)
    keys = db.session.scalars(select(CodeSend.key_hash)).all()
    assert len(set(keys)) == 2 and all("nobody" not in key for key in keys)
