"""Every email renders (StrictUndefined) with a one-line subject, a text part and an HTML part."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from authserver.mail import messages

CONFIRM_URL = "http://auth.example.com/forgot-password/confirm?username=alice"
LOGIN_URL = "http://auth.example.com/login"
EXPIRES = datetime(2030, 1, 8, 12, 0, tzinfo=timezone.utc)


def build_all(user):
    return {
        "reset_code": messages.reset_code(user, "042917", CONFIRM_URL),
        "cannot_reset": messages.cannot_reset(user),
        "password_changed": messages.password_changed(user),
        "admin_reset": messages.admin_reset(user, "042917", CONFIRM_URL),
        "temporary_password": messages.temporary_password(user, "Tmp-pa55<&>word", LOGIN_URL,
                                                          EXPIRES),
    }


@pytest.fixture
def drafts(mail_app, user):
    with mail_app.app_context():
        return build_all(user)


def test_every_builder_renders_text_and_html_for_its_kind(drafts):
    for kind, draft in drafts.items():
        assert draft.kind == kind
        assert draft.to == "alice@example.com"
        assert draft.subject and "\n" not in draft.subject
        assert "Alice Example" in draft.text and "Alice Example" in draft.html
        assert draft.html.lstrip().startswith("<!DOCTYPE html>")
        assert "Example Corp" in draft.text
        assert "<link" not in draft.html and "<img" not in draft.html


def test_reset_code_puts_the_code_on_its_own_line_with_its_lifetime(drafts):
    draft = drafts["reset_code"]
    assert draft.subject == "Your verification code"
    assert re.findall(r"^(\d{6})$", draft.text, re.M) == ["042917"]
    assert "valid for 60 minutes" in draft.text
    assert "did not ask" in draft.text
    assert re.search(r"monospace[^>]*>042917</p>", draft.html)


def test_reset_code_lifetime_follows_the_setting(make_mail_app, user):
    app = make_mail_app(RESET_CODE_TTL=1800)
    with app.app_context():
        assert "valid for 30 minutes" in messages.reset_code(user, "123456", CONFIRM_URL).text


def test_cannot_reset_says_the_exact_sentence_and_names_the_administrator(drafts):
    draft = drafts["cannot_reset"]
    for part in (draft.text, draft.html):
        assert "User password cannot be reset in the current state." in part
        assert "the IT help desk" in part
    assert not re.search(r"\d{6}", draft.text)


def test_password_changed_subject_contains_the_notice(drafts):
    assert "Your password was changed" in drafts["password_changed"].subject


def test_admin_reset_carries_code_and_confirm_link(drafts):
    draft = drafts["admin_reset"]
    assert "administrator" in draft.subject.lower()
    assert re.findall(r"^(\d{6})$", draft.text, re.M) == ["042917"]
    assert CONFIRM_URL in draft.text
    assert 'href="http://auth.example.com/forgot-password/confirm?username=alice"' in draft.html
    assert "before you can sign in" in draft.text


def test_temporary_password_gives_password_expiry_and_first_sign_in_rule(drafts):
    draft = drafts["temporary_password"]
    assert "\nTmp-pa55<&>word\n" in draft.text
    assert "Tmp-pa55&lt;&amp;&gt;word" in draft.html
    assert "valid for 7 days, until 2030-01-08 12:00 UTC" in draft.text
    assert "first sign-in you must choose a new password" in draft.text
    assert LOGIN_URL in draft.html


def test_html_part_escapes_user_data(mail_app):
    hostile = type("U", (), {"username": "<b>bob</b>", "email": "b@example.com",
                                   "name": "<script>x</script>"})()
    with mail_app.app_context():
        draft = messages.password_changed(hostile)
    assert "<script>" not in draft.html
    assert "&lt;script&gt;" in draft.html
    assert "<script>x</script>" in draft.text


def test_user_without_display_name_is_greeted_by_user_name(mail_app, user):
    user.name = ""
    with mail_app.app_context():
        assert "Hello alice," in messages.cannot_reset(user).text
