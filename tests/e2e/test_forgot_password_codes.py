"""The verification-code rules of SPEC 4 and 7, on a frozen clock: 60 minutes, 5 wrong tries,
newest code wins, single use, and the resend limits keyed on the typed name."""
from __future__ import annotations

from datetime import timedelta

import pytest

from authserver import security
from authserver.accounts.states import AccountState
from support import PASSWORD, AuthActions, make_user
from reset_steps import (DEAD, NEW_PASSWORD, NOT_VALID, ResetActions, errors, flashes,
                         goes_to_confirm, last_code, queued)

RESENT = "We sent a new code. It replaces the one before."


@pytest.fixture
def steps(client, frozen):
    return ResetActions(client)


@pytest.fixture
def alice(app):
    return make_user(app)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def rejected_with(resp, message: str) -> bool:
    """The confirm page again (200), with `message` under the code field."""
    return resp.status_code == 200 and message in errors(resp.get_data(as_text=True))


def password_is(app, password: str) -> bool:
    return AuthActions(app.test_client()).login(password=password).status_code == 303


def test_code_still_works_after_59_minutes(app, steps, frozen, alice):
    steps.send_code("alice")
    frozen.tick(timedelta(minutes=59))
    assert steps.confirm("alice", last_code(app)).status_code == 303
    assert password_is(app, NEW_PASSWORD)


@pytest.mark.parametrize("after", [timedelta(minutes=60), timedelta(minutes=61)])
def test_code_is_rejected_from_60_minutes_on(app, steps, frozen, alice, after):
    steps.send_code("alice")
    frozen.tick(after)
    assert rejected_with(steps.confirm("alice", last_code(app)), NOT_VALID)
    assert password_is(app, PASSWORD)


def test_each_of_the_first_four_wrong_tries_says_the_code_is_not_valid(app, steps, alice):
    steps.send_code("alice")
    code = last_code(app)
    for _ in range(4):
        assert rejected_with(steps.confirm("alice", wrong(code)), NOT_VALID)
    assert steps.confirm("alice", code).status_code == 303


def test_the_fifth_wrong_try_kills_the_code_and_says_to_ask_for_a_new_one(app, steps, alice):
    steps.send_code("alice")
    code = last_code(app)
    for _ in range(4):
        steps.confirm("alice", wrong(code))
    assert rejected_with(steps.confirm("alice", wrong(code)), DEAD)


def test_the_sixth_try_is_refused_even_with_the_right_code(app, steps, alice):
    steps.send_code("alice")
    code = last_code(app)
    for _ in range(5):
        steps.confirm("alice", wrong(code))
    assert rejected_with(steps.confirm("alice", code), DEAD)
    assert password_is(app, PASSWORD)


def test_a_new_code_after_a_dead_one_works(app, steps, frozen, alice):
    steps.send_code("alice")
    for _ in range(5):
        steps.confirm("alice", wrong(last_code(app)))
    frozen.tick(timedelta(seconds=60))
    steps.resend("alice")
    assert steps.confirm("alice", last_code(app)).status_code == 303


def test_a_new_code_supersedes_the_old_one(app, steps, frozen, alice, monkeypatch):
    fixed = iter(["111111", "222222"])
    monkeypatch.setattr(security, "random_code", lambda digits=6: next(fixed))
    steps.send_code("alice")
    frozen.tick(timedelta(seconds=61))
    assert goes_to_confirm(steps.resend("alice"), "alice")
    assert last_code(app) == "222222"
    assert rejected_with(steps.confirm("alice", "111111"), NOT_VALID)
    assert steps.confirm("alice", "222222").status_code == 303


def test_a_code_works_once(app, steps, alice):
    steps.send_code("alice")
    code = last_code(app)
    assert steps.confirm("alice", code).status_code == 303
    again = steps.confirm("alice", code, password="yet another passphrase")
    assert rejected_with(again, NOT_VALID)
    assert password_is(app, NEW_PASSWORD)


def test_resend_before_60_seconds_says_how_long_to_wait_and_sends_nothing(app, client, steps,
                                                                          frozen, alice):
    steps.send_code("alice")
    frozen.tick(timedelta(seconds=25))
    resp = steps.resend("alice")
    assert goes_to_confirm(resp, "alice")
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert flashes(page) == ["A code was sent moments ago. You can ask for a new one in "
                             "35 seconds."]
    assert len(queued(app, "reset_code")) == 1


def test_resend_after_60_seconds_sends_a_fresh_code(app, client, steps, frozen, alice):
    steps.send_code("alice")
    frozen.tick(timedelta(seconds=60))
    resp = steps.resend("alice")
    assert goes_to_confirm(resp, "alice")
    assert flashes(client.get(resp.headers["Location"]).get_data(as_text=True)) == [RESENT]
    assert len(queued(app, "reset_code")) == 2


def test_at_most_five_sends_an_hour_and_the_first_send_counts(app, client, steps, frozen,
                                                              alice):
    steps.send_code("alice")
    for _ in range(4):
        frozen.tick(timedelta(seconds=61))
        steps.resend("alice")
    assert len(queued(app, "reset_code")) == 5
    frozen.tick(timedelta(seconds=61))  # 5 min 5 s after the first send
    resp = steps.resend("alice")
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert flashes(page) == ["Too many codes were asked for this name. Try again in "
                             "55 minutes."]
    assert len(queued(app, "reset_code")) == 5
    frozen.tick(timedelta(minutes=55))  # the first send is now more than an hour old
    steps.resend("alice")
    assert len(queued(app, "reset_code")) == 6


def test_send_code_is_limited_like_resend(app, client, steps, frozen, alice):
    steps.send_code("alice")
    resp = steps.send_code("alice")
    assert goes_to_confirm(resp, "alice")
    assert "in 60 seconds" in flashes(client.get(resp.headers["Location"]).get_data(
        as_text=True))[0]
    assert len(queued(app, "reset_code")) == 1


def test_limits_are_keyed_on_the_normalised_typed_name(app, steps, frozen, alice):
    steps.send_code("alice")
    steps.resend("  ALICE ")
    assert len(queued(app, "reset_code")) == 1
    resp = steps.resend("alice@example.com")  # another name typed: its own limits...
    assert goes_to_confirm(resp, "alice@example.com")
    assert len(queued(app, "reset_code")) == 1  # ...but the account's, silently, too


@pytest.mark.parametrize("state", [None, AccountState.DISABLED, AccountState.FORCE_CHANGE_PASSWORD])
def test_limits_and_messages_are_the_same_for_a_name_without_an_account(app, frozen, state):
    make_user(app, "alice", state=state and state.value)
    schedule = [0, 30, 31, 61, 61, 61, 61, 61, 3600]
    answers = {"alice": [], "nobody": []}
    clients = {name: app.test_client() for name in answers}
    for i, wait in enumerate(schedule):
        frozen.tick(timedelta(seconds=wait))
        for name, client in clients.items():
            steps = ResetActions(client)
            resp = steps.send_code(name) if i == 0 else steps.resend(name)
            page = client.get(resp.headers["Location"]).get_data(as_text=True)
            answers[name].append((resp.status_code, goes_to_confirm(resp, name), flashes(page)))
    assert answers["alice"] == answers["nobody"]
    assert any("moments ago" in f for _, _, fl in answers["nobody"] for f in fl)
    assert any("Too many codes" in f for _, _, fl in answers["nobody"] for f in fl)


def test_the_wait_reads_naturally_at_one_second(app, client, steps, frozen, alice):
    steps.send_code("alice")
    frozen.tick(timedelta(seconds=59, milliseconds=500))
    resp = steps.resend("alice")
    assert flashes(client.get(resp.headers["Location"]).get_data(as_text=True)) == [
        "A code was sent moments ago. You can ask for a new one in 1 second."]


def test_one_address_asking_for_many_names_is_throttled(settings, request):
    """The per-name limits do not stop one client from spraying names: a per-IP limit does."""
    settings.update(RATELIMIT_ENABLED=True, RATELIMIT_FORGOT="3 per minute")
    app = request.getfixturevalue("app")
    client = app.test_client()
    steps = ResetActions(client)
    answers = [steps.send_code(f"name{i}").status_code for i in range(4)]
    assert answers == [303, 303, 303, 429]
    assert "Too many requests" in steps.send_code("name9").get_data(as_text=True)
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "127.0.0.2"
    assert ResetActions(elsewhere).send_code("name5").status_code == 303
