"""`mail status` and `mail send-pending`."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from freezegun import freeze_time

from authserver.commands.mail import mail_cli
from authserver.extensions import db
from authserver.mail import outbox, sender
from authserver.mail.messages import Draft

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


def queue_mail(app, count):
    with app.app_context():
        for i in range(count):
            outbox.queue(Draft(to=f"u{i}@example.com", subject="s", text="t", html="<p>h</p>",
                               kind="reset_code"))
        db.session.commit()


def test_status_prints_counts_age_and_last_error(mail_app):
    with freeze_time(T0) as frozen:
        queue_mail(mail_app, 2)
        frozen.tick(timedelta(seconds=42))
        result = mail_app.test_cli_runner().invoke(mail_cli, ["status"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "queued: 2", "sent: 0", "failed: 0", "oldest queued: 42 s", "last error: -"]


def test_send_pending_delivers_everything_due_in_several_batches(mail_app):
    queue_mail(mail_app, 5)
    result = mail_app.test_cli_runner().invoke(mail_cli, ["send-pending", "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert "sent: 5" in result.output
    assert len(mail_app.extensions[sender.TRANSPORT_EXT].messages) == 5
    with mail_app.app_context():
        assert sender.status(db.session)["queued"] == 0


def test_send_pending_exits_non_zero_when_delivery_fails(make_mail_app, free_port):
    app = make_mail_app(MAIL_TRANSPORT="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port,
                        MAIL_SUPPRESS_SEND=False)
    queue_mail(app, 1)
    result = app.test_cli_runner().invoke(mail_cli, ["send-pending"])
    assert result.exit_code == 1
    assert "failed: 1" in result.output
    status = app.test_cli_runner().invoke(mail_cli, ["status"]).output
    assert "last error: ConnectionRefusedError" in status
