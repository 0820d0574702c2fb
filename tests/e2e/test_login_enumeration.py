"""No enumeration at /login, measured (SPEC 7): a wrong password for an existing, a missing, a
disabled and a temporary-password account gets the same answer, in median times within 30 % or
25 ms of each other, with argon2id at its default cost (the dummy hash of a missing name must
cost what a real check costs). Run twice: with argon2id at its default cost, and with a stand-in
that takes 60 ms a check, so that a missing name answered without one would fall outside the
rule."""
from __future__ import annotations

import statistics
import time

import pytest

from authserver.accounts.states import AccountState
from authserver.config import Defaults
from support import StubHasher, assert_medians_alike, csrf_from, make_user

KINDS = {"active": None, "missing": "missing", "disabled": AccountState.DISABLED.value,
         "temporary": AccountState.FORCE_CHANGE_PASSWORD.value}
ROUNDS = 15


@pytest.fixture(params=["argon2id", "slow stand-in"])
def settings(request, settings):
    if request.param == "argon2id":
        for name in ("PASSWORD_HASH_TIME_COST", "PASSWORD_HASH_MEMORY_COST",
                     "PASSWORD_HASH_PARALLELISM"):
            settings[name] = getattr(Defaults, name)  # the real cost, not the tests' cheap one
    else:
        settings["PASSWORD_HASHER"] = StubHasher(delay=0.06)
    return settings


def names_for(app, suffix: str) -> dict[str, str]:
    names = {}
    for kind, state in KINDS.items():
        names[kind] = f"zq{kind[:3]}{suffix}"
        if state != "missing":
            make_user(app, names[kind], state=state)
    return names


def wrong_password(client, name: str) -> tuple[float, int, str]:
    csrf = csrf_from(client.get("/login").get_data(as_text=True))
    started = time.perf_counter()
    resp = client.post("/login", data={"username": name, "password": "not-the-password-1",
                                       "csrf_token": csrf})
    elapsed = time.perf_counter() - started
    body = resp.get_data(as_text=True).replace(name, "NAME")
    return elapsed, resp.status_code, csrf_from(body) and body.replace(csrf_from(body), "CSRF")


def test_a_wrong_password_answers_alike_and_in_comparable_time_for_every_kind(app, capsys):
    rounds = [names_for(app, f"{i:02d}") for i in range(ROUNDS + 1)]
    clients = {kind: app.test_client() for kind in KINDS}
    for kind, name in rounds.pop().items():  # warm-up: templates, hasher, first connection
        wrong_password(clients[kind], name)
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    answers: dict[str, set] = {kind: set() for kind in KINDS}
    for names in rounds:
        for kind, name in names.items():
            elapsed, status, body = wrong_password(clients[kind], name)
            times[kind].append(elapsed)
            answers[kind].add((status, body))
    for kind in KINDS:
        assert answers[kind] == answers["active"], kind
    assert len(answers["active"]) == 1
    medians = {kind: statistics.median(values) * 1000 for kind, values in times.items()}
    with capsys.disabled():
        print("\n/login wrong password, median ms over 15: " +
              ", ".join(f"{kind} {ms:.1f}" for kind, ms in medians.items()))
    assert_medians_alike(medians)
