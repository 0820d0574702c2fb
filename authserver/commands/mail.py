"""`authserver mail status` and `authserver mail send-pending`: the outbox, for operators."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from ..extensions import db
from ..mail import sender
from ..mail.transports import make_transport

mail_cli = AppGroup("mail", help="Inspect and deliver the mail outbox.")


@mail_cli.command("status")
def status_command() -> None:
    """Print queued, sent and failed counts, the oldest queued message's age and the last error."""
    info = sender.status(db.session)
    age = info["oldest_queued_age"]
    click.echo(f"queued: {info['queued']}")
    click.echo(f"sent: {info['sent']}")
    click.echo(f"failed: {info['failed']}")
    click.echo("oldest queued: " + ("-" if age is None else f"{int(age)} s"))
    click.echo(f"last error: {info['last_error'] or '-'}")


@mail_cli.command("send-pending")
@click.option("--batch", default=20, show_default=True, help="Messages claimed per pass.")
@click.option("--now", "retry_now", is_flag=True,
              help="Also try messages still waiting out a retry delay (after fixing SMTP).")
def send_pending_command(batch: int, retry_now: bool) -> None:
    """Deliver every message that is due now, then exit; non-zero when some failed (cron)."""
    app = current_app._get_current_object()
    if retry_now:
        sender.make_due_now(app)
    transport = app.extensions.get(sender.TRANSPORT_EXT) or make_transport(app)
    attempted, sent = sender.send_pending(app, transport, batch=batch)
    click.echo(f"sent: {sent}")
    click.echo(f"failed: {attempted - sent}")
    if attempted > sent:
        raise SystemExit(1)
