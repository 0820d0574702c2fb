"""Reset codes are counted per account as well as per typed name (issue #10 finding 11,
SPEC 7): a user name and an email address of one account share one budget of sends and
tries, and the pages answer only from the typed name, so they never link the two names."""
from __future__ import annotations

from datetime import timedelta

import pytest

from support import make_user
from reset_steps import NOT_VALID, ResetActions, errors, goes_to_confirm, last_code, queued



@pytest.fixture
def steps(client, frozen):
    return ResetActions(client)


@pytest.fixture
def alice(app):
    return make_user(app)


def wrong(code: str, n: int = 1) -> str:
    return f"{(int(code) + n) % 1_000_000:06d}"


def answer(resp) -> tuple[int, list[str]]:
    """What the confirm page says: status and the messages under the fields."""
    return resp.status_code, errors(resp.get_data(as_text=True))


def test_the_user_name_and_the_email_share_one_send_budget(app, steps, frozen, alice):
    """Two names of one account: the second name's sends look the same, but mail no more."""
    for _ in range(5):
        assert goes_to_confirm(steps.send_code("alice"), "alice")
        assert goes_to_confirm(steps.send_code("alice@example.com"), "alice@example.com")
        frozen.tick(timedelta(seconds=61))
    assert len(queued(app, "reset_code")) == 5  # not 10: one account, one budget


def test_the_account_limit_is_silent(app, steps, frozen, alice):
    """The page answers from the typed name alone: a fresh name of a busy account gets the
    same answer as a fresh name without any account."""
    steps.send_code("alice")
    ours = steps.send_code("alice@example.com")
    theirs = steps.send_code("nobody@example.com")
    assert goes_to_confirm(ours, "alice@example.com")
    assert goes_to_confirm(theirs, "nobody@example.com")
    assert len(queued(app, "reset_code")) == 1


def test_wrong_tries_under_the_email_do_not_say_too_many_for_the_user_name(app, steps, alice):
    """Finding 11: five wrong codes under the email answer exactly as under a name that has
    no account, so "too many tries" never links the email to the user name."""
    steps.send_code("alice")
    code = last_code(app)
    ours = [answer(steps.confirm("alice@example.com", wrong(code, n))) for n in range(1, 6)]
    theirs = [answer(steps.confirm("nobody@example.com", wrong(code, n))) for n in range(1, 6)]
    assert ours == theirs == [(200, [NOT_VALID])] * 5
    # ...and the user name's own counter is untouched: one wrong try is just "not valid".
    assert answer(steps.confirm("alice", wrong(code, 9))) == (200, [NOT_VALID])


def test_the_tries_under_both_names_share_one_budget(app, steps, alice):
    """Five wrong tries in all, whichever name typed them, end the account's code: the right
    code typed afterwards no longer resets the password."""
    steps.send_code("alice")
    code = last_code(app)
    for n in range(1, 4):
        steps.confirm("alice@example.com", wrong(code, n))
    for n in range(4, 6):
        assert answer(steps.confirm("alice", wrong(code, n))) == (200, [NOT_VALID])
    assert steps.confirm("alice", code).status_code == 200  # refused: the code is dead


def test_the_right_code_works_under_either_name(app, steps, alice):
    steps.send_code("alice")
    assert steps.confirm("alice@example.com", last_code(app)).status_code == 303
