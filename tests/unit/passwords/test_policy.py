"""The password policy of SPEC 4: 8 to 256 characters (the minimum configurable), any
characters, no composition rules, not the user name or email, not a common password."""
from __future__ import annotations

import pytest

from authserver.passwords.policy import PasswordRejected, check_password

TOO_SHORT = "Use at least 8 characters."
SAME_AS_NAME = "Your password cannot be your user name or email address."
COMMON = "This password is too common and easy to guess. Choose another."


def reason(password: str, **who) -> str | None:
    try:
        check_password(password, **who)
    except PasswordRejected as exc:
        return exc.message
    return None


def test_eight_characters_are_enough_and_seven_are_not(ctx):
    assert reason("kx7#vq2m") is None
    assert reason("kx7#vq2") == TOO_SHORT


def test_the_minimum_is_a_setting(settings, request):
    settings["PASSWORD_MIN_LENGTH"] = 12
    with request.getfixturevalue("app").app_context():
        assert reason("kx7#vq2mzzz") == "Use at least 12 characters."
        assert reason("kx7#vq2mzzzz") is None


def test_256_characters_are_allowed_and_257_are_not(ctx):
    assert reason("ab" * 128) is None
    assert reason("ab" * 128 + "c") == "Use at most 256 characters."


@pytest.mark.parametrize("password", [
    "all lowercase words here",     # no composition rules
    "ÄÖÜ straße ünïcödé",           # any characters
    "пароль-на-русском",
    "🔑🔒🗝️🚪🏠🌙⭐🌊",                 # length counts characters, not bytes
    "  spaces at both ends  ",
])
def test_any_characters_and_no_composition_rules(ctx, password):
    assert reason(password) is None


@pytest.mark.parametrize("password", ["password", "Password", "PASSWORD1", "iloveyou",
                                      "qwertyuiop", "11111111", "  letmein1 "])
def test_common_passwords_are_refused_whatever_their_case(ctx, password):
    assert reason(password) == COMMON


@pytest.mark.parametrize("password", ["longusername", "LongUserName", " longusername "])
def test_the_user_name_is_refused_whatever_its_case(ctx, password):
    assert reason(password, username="longusername") == SAME_AS_NAME


def test_the_email_address_is_refused(ctx):
    assert reason("Long.User@Example.com", username="lu",
                  email="long.user@example.com") == SAME_AS_NAME


def test_a_password_that_merely_contains_the_user_name_is_allowed(ctx):
    assert reason("longusername and more", username="longusername") is None


def test_no_user_name_or_email_refuses_nothing_extra(ctx):
    assert reason("kx7#vq2m", username="", email="") is None


def test_length_is_checked_before_anything_else(ctx):
    assert reason("1234567") == TOO_SHORT
    assert reason("alice", username="alice") == TOO_SHORT
