"""The password use cases: what request_code queues for each kind of account, what
confirm_reset changes, records and refuses, and that a new password voids old codes."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from authserver.accounts import services as accounts
from authserver.accounts.states import AccountState
from authserver.audit import SecurityEvent
from authserver.extensions import db
from authserver.mail.models import OutboxMessage
from authserver.passwords import services
from authserver.passwords.models import CodeSend, ResetCode

NEW = "a brand new passphrase"


def new_user(name: str, state: AccountState = AccountState.ACTIVE):
    user = accounts.new_user(name, f"{name}@example.com")
    accounts.set_password(user, "correct horse battery staple")
    user.state = state.value
    db.session.commit()
    return user


def mail() -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def events() -> list[str]:
    return list(db.session.scalars(select(SecurityEvent.name).order_by(SecurityEvent.id)))


def last_code() -> str:
    return re.search(r"^(\d{6})$", mail()[-1].text, re.M).group(1)


def test_request_code_for_an_active_account_queues_a_code(ctx):
    new_user("alice")
    services.request_code("alice")
    (msg,) = mail()
    assert msg.kind == "reset_code" and msg.to == "alice@example.com"
    assert db.session.scalar(select(ResetCode)) is not None
    assert events() == ["reset_requested"]


@pytest.mark.parametrize("state", [AccountState.DISABLED, AccountState.FORCE_CHANGE_PASSWORD])
def test_request_code_for_an_account_that_may_not_reset_queues_the_notice(ctx, state):
    new_user("alice", state)
    services.request_code("alice@example.com")
    (msg,) = mail()
    assert msg.kind == "cannot_reset"
    assert "User password cannot be reset in the current state." in msg.text.splitlines()
    assert db.session.scalar(select(ResetCode)) is None


def test_request_code_for_a_missing_name_only_logs_the_send(ctx):
    services.request_code("nobody")
    assert mail() == [] and db.session.scalar(select(ResetCode)) is None
    assert len(db.session.scalars(select(CodeSend)).all()) == 1


def test_request_code_over_the_limit_raises_before_doing_anything(ctx, frozen):
    new_user("alice")
    services.request_code("alice")
    with pytest.raises(services.SendThrottled) as caught:
        services.request_code("ALICE")
    assert caught.value.wait == 60
    assert len(mail()) == 1


def test_confirm_reset_sets_the_password_activates_and_sends_the_notice(ctx):
    user = new_user("alice", AccountState.RESET_REQUIRED)
    services.request_code("alice")
    services.confirm_reset("alice", last_code(), NEW)
    assert user.state == AccountState.ACTIVE.value
    assert accounts.authenticate("alice", NEW) == user
    assert mail()[-1].kind == "password_changed"
    assert "password_reset" in events()


def test_confirm_reset_records_wrong_and_dead_codes(ctx):
    new_user("alice")
    services.request_code("alice")
    code = last_code()
    for _ in range(5):
        with pytest.raises((services.CodeRejected, services.CodeDead)):
            services.confirm_reset("alice", f"{(int(code) + 1) % 1_000_000:06d}", NEW)
    assert events()[1:] == ["reset_code_wrong"] * 4 + ["reset_code_dead"]


@pytest.mark.parametrize("state", [AccountState.DISABLED, AccountState.FORCE_CHANGE_PASSWORD])
def test_a_live_code_stops_working_when_the_account_may_no_longer_reset(ctx, state):
    user = new_user("alice")
    services.request_code("alice")
    user.state = state.value
    db.session.commit()
    with pytest.raises(services.CodeRejected):
        services.confirm_reset("alice", last_code(), NEW)


def test_a_password_refused_for_the_account_does_not_spend_the_code(ctx):
    new_user("alice")
    services.request_code("alice")
    with pytest.raises(services.PasswordRejected):
        services.confirm_reset("alice", last_code(), "ALICE@example.com")
    services.confirm_reset("alice", last_code(), NEW)


def test_a_password_change_voids_a_code_asked_for_before(ctx):
    user = new_user("alice")
    services.request_code("alice")
    code = last_code()
    services.change_password(user, "yet another passphrase",
                             current="correct horse battery staple")
    with pytest.raises(services.CodeRejected):
        services.confirm_reset("alice", code, NEW)
