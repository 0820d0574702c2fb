"""Limit and hashing settings are checked at start: a typo stops the server instead of
silently turning a limit off."""
import pytest

from authserver import create_app


@pytest.mark.parametrize("name,value", [
    ("RATELIMIT_LOGIN_FAILURES_GLOBAL", "lots"),
    ("RATELIMIT_TOKEN_AUTH_FAILURES_CLIENT", "30 per fortnight"),
    ("PASSWORD_HASH_CONCURRENCY", 0)])
def test_a_bad_limit_setting_stops_the_start(settings, name, value):
    settings[name] = value
    with pytest.raises(RuntimeError, match=name):
        create_app(settings)


def test_an_empty_limit_is_off(settings):
    settings.update({"RATELIMIT_TOKEN": "", "RATELIMIT_LOGIN_FAILURES_PREFIX": None})
    assert create_app(settings).config["RATELIMIT_TOKEN"] == ""
