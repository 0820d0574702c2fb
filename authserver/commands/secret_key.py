"""`authserver secret-key reseal`: re-encrypt every sealed secret under a new secret key."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from .. import sealing
from ..extensions import db

secret_key = AppGroup("secret-key", help="Change AUTHSERVER_SECRET_KEY without losing secrets.")


@secret_key.command("reseal")
def reseal_command() -> None:
    """Re-seal every encrypted column under AUTHSERVER_SECRET_KEY, in one transaction.

    Run it once (on any machine) after every machine runs with the new key in
    AUTHSERVER_SECRET_KEY and the old one in AUTHSERVER_SECRET_KEY_FALLBACKS. Values
    already sealed under the new key are left alone, so running it twice is harmless.
    Keyed hashes (client secrets, refresh tokens, sessions, codes) cannot be re-sealed:
    see docs/keys.md for what a secret-key change does to them.
    """
    try:
        counts = sealing.reseal_all(db.session, db.metadata.tables, current_app.config)
    except sealing.SealBroken as exc:
        db.session.rollback()
        raise click.ClickException(
            f"{exc.message}. Nothing was changed: list the key this value was sealed "
            "under in AUTHSERVER_SECRET_KEY_FALLBACKS and run it again.") from exc
    db.session.commit()
    for column, count in counts.items():
        click.echo(f"{column}: {count} re-sealed")
    if not current_app.config["SECRET_KEY_FALLBACKS"]:
        click.echo("No AUTHSERVER_SECRET_KEY_FALLBACKS set: nothing could have been sealed "
                   "under another key that this installation can open.")
