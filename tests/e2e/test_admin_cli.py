"""`authserver users reset|disable|enable USERNAME` (SPEC section 6) use the admin services."""
import re

from support import make_user
from sqlalchemy import select

from authserver.accounts.models import User
from authserver.audit import SecurityEvent
from authserver.extensions import db
from authserver.mail.models import OutboxMessage
from authserver.mail.sender import TRANSPORT_EXT


def state(app, user_id):
    with app.app_context():
        return db.session.get(User, user_id).state


def outbox(app):
    """Every email the command made: delivered at once (memory transport) or still queued."""
    with app.app_context():
        queued = list(db.session.scalars(select(OutboxMessage).where(
            OutboxMessage.sent_at.is_(None))))
    return list(app.extensions[TRANSPORT_EXT].messages) + queued


def event_names(app):
    with app.app_context():
        return [e.name for e in db.session.scalars(select(SecurityEvent))]


def test_reset_requires_a_reset_and_emails_a_code(app):
    uid = make_user(app, "alice")
    result = app.test_cli_runner().invoke(args=["users", "reset", "alice"])
    assert result.exit_code == 0, result.output
    assert "Reset requested for alice" in result.output
    assert state(app, uid) == "reset_required"
    (mail,) = outbox(app)
    assert mail.to == "alice@example.com" and re.search(r"\b\d{6}\b", mail.text)
    assert "/forgot-password/confirm" in mail.text
    assert "admin_reset" in event_names(app)


def test_reset_takes_an_email_address_too(app):
    uid = make_user(app, "bob")
    result = app.test_cli_runner().invoke(args=["users", "reset", "BOB@example.com"])
    assert result.exit_code == 0, result.output
    assert state(app, uid) == "reset_required"


def test_disable_then_enable(app):
    uid = make_user(app, "carol")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "disable", "carol"])
    assert result.exit_code == 0 and "Disabled carol" in result.output
    assert state(app, uid) == "disabled"
    result = runner.invoke(args=["users", "enable", "carol"])
    assert result.exit_code == 0 and "Enabled carol" in result.output
    assert state(app, uid) == "active"
    assert {"user_disabled", "user_enabled"} <= set(event_names(app))


def test_unknown_user_fails_with_a_message_and_changes_nothing(app):
    for verb in ("reset", "disable", "enable"):
        result = app.test_cli_runner().invoke(args=["users", verb, "nobody"])
        assert result.exit_code == 1
        assert "No user named 'nobody'" in result.output
    assert outbox(app) == []


def test_reset_of_a_disabled_user_is_refused(app):
    uid = make_user(app, "dave", state="disabled")
    result = app.test_cli_runner().invoke(args=["users", "reset", "dave"])
    assert result.exit_code == 1 and "disabled" in result.output
    assert state(app, uid) == "disabled" and outbox(app) == []


def test_enable_refuses_to_skip_a_pending_reset(app):
    uid = make_user(app, "erin", state="reset_required")
    result = app.test_cli_runner().invoke(args=["users", "enable", "erin"])
    assert result.exit_code == 1 and "Only a disabled account" in result.output
    assert state(app, uid) == "reset_required"
