"""Every (state, action) pair through the real use cases (the web, the API and the CLI all
call these), and Disable/Enable round trips that keep a pending Reset or a temporary
password with its expiry (SPEC sections 4 and 8)."""
from datetime import timedelta

import pytest
from support import PASSWORD, make_user

from authserver import clock
from authserver.accounts.models import User
from authserver.accounts.states import InvalidTransition
from authserver.admin import services as admin
from authserver.extensions import db
from authserver.passwords import codes
from authserver.passwords import services as passwords

NEW = "a brand new passphrase"
STATES = ["active", "force_change_password", "reset_required", "disabled"]
REFUSED = None


def _self_reset(user):
    code = codes.issue_code(user, clock.now())
    db.session.commit()
    passwords.confirm_reset(user.username, code, NEW)


ACTIONS = {
    "reset": lambda u: admin.reset_user(u, None),
    "temporary_password": lambda u: admin.send_temporary_password(u, None),
    "disable": lambda u: admin.disable_user(u, None),
    "enable": lambda u: admin.enable_user(u, None),
    "self_reset": _self_reset,
    "forced_change": lambda u: passwords.change_password(u, NEW),
    "password_change": lambda u: passwords.change_password(u, NEW, current=PASSWORD),
}

# Written out by hand, independently of accounts/states.py TABLE.
EXPECTED = {
    "active": {"reset": "reset_required", "temporary_password": "force_change_password",
               "disable": "disabled", "enable": "active", "self_reset": "active",
               "forced_change": REFUSED, "password_change": "active"},
    "force_change_password": {
        "reset": "reset_required", "temporary_password": "force_change_password",
        "disable": "disabled", "enable": REFUSED, "self_reset": REFUSED,
        "forced_change": "active", "password_change": REFUSED},
    "reset_required": {
        "reset": "reset_required", "temporary_password": "force_change_password",
        "disable": "disabled", "enable": REFUSED, "self_reset": "active",
        "forced_change": REFUSED, "password_change": REFUSED},
    "disabled": {"reset": REFUSED, "temporary_password": REFUSED, "disable": "disabled",
                 "enable": "active", "self_reset": REFUSED, "forced_change": REFUSED,
                 "password_change": REFUSED},
}


def user(uid) -> User:
    return db.session.get(User, uid, populate_existing=True)


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_every_state_and_action(ctx, state, action):
    uid = make_user(ctx, "sam", state=state)
    before = (user(uid).state, user(uid).password_hash)
    expected = EXPECTED[state][action]
    if expected is REFUSED:
        with pytest.raises((InvalidTransition, passwords.CodeRejected)):
            ACTIONS[action](user(uid))
        db.session.rollback()
        assert (user(uid).state, user(uid).password_hash) == before
    else:
        ACTIONS[action](user(uid))
        assert user(uid).state == expected


def test_disable_then_enable_keeps_a_pending_reset(ctx):
    uid = make_user(ctx, "rae")
    admin.reset_user(user(uid), None)
    admin.disable_user(user(uid), None)
    admin.enable_user(user(uid), None)
    assert user(uid).state == "reset_required"


def test_disable_then_enable_keeps_a_temporary_password_and_its_expiry(ctx):
    uid = make_user(ctx, "tim")
    admin.send_temporary_password(user(uid), None)
    expires = user(uid).temp_password_expires_at
    password_hash = user(uid).password_hash
    admin.disable_user(user(uid), None)
    admin.disable_user(user(uid), None)  # twice: still returns to the state before
    admin.enable_user(user(uid), None)
    u = user(uid)
    assert (u.state, u.temp_password_expires_at, u.password_hash) == \
        ("force_change_password", expires, password_hash)
    assert expires - clock.now() > timedelta(days=6)


def test_disable_then_enable_of_an_active_account_is_active(ctx):
    uid = make_user(ctx, "ada")
    admin.disable_user(user(uid), None)
    admin.enable_user(user(uid), None)
    assert user(uid).state == "active" and user(uid).state_before_disable is None
