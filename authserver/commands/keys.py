"""`authserver keys list|rotate`: inspect and rotate the token signing keys."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from .. import clock
from ..errors import AuthserverError
from ..tokens.keyring import Keyring, format_time, read_manifest, rotate_app

keys = AppGroup("keys", help="List and rotate the token signing keys in KEYS_DIR.")

COLUMNS = ("KID", "ALG", "STATUS", "ACTIVATES_AT", "RETIRES_AT")


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in rows)


@keys.command("list")
def list_command() -> None:
    """Show every key: kid, alg, status, activation and retirement.

    Status: next (published, not signing yet), signing, published (verifies
    tokens only) or retired (gone from the JWKS). Private material is never shown.
    """
    try:
        keyring = Keyring.load(current_app.config["KEYS_DIR"])
    except AuthserverError as exc:
        raise click.ClickException(exc.message) from exc
    rows = [COLUMNS] + [(e["kid"], e["alg"], e["status"], format_time(e["activates_at"]),
                         format_time(e["retires_at"]) or "-")
                        for e in keyring.entries(clock.now())]
    click.echo(_table(rows))


@keys.command("rotate")
def rotate_command() -> None:
    """Publish new keys now; they sign after JWKS_CACHE_TTL.

    One RS256 and one ES256 key. The keys they replace stay published until
    every token they signed has expired (the longer of ACCESS_TOKEN_TTL and
    ID_TOKEN_TTL, plus KEY_RETIRE_SLACK). Private material is never shown.
    """
    keys_dir = current_app.config["KEYS_DIR"]
    try:
        before = {entry.kid: entry for entry in read_manifest(keys_dir)}
        kids = rotate_app(current_app, clock.now())
        after = read_manifest(keys_dir)
    except AuthserverError as exc:
        raise click.ClickException(exc.message) from exc
    for entry in after:
        if entry.kid in kids:
            click.echo(f"new {entry.alg} key {entry.kid}: published now, "
                       f"signs from {format_time(entry.activates_at)}")
    for entry in after:
        old = before.get(entry.kid)
        if old is not None and old.retires_at is None and entry.retires_at is not None:
            click.echo(f"old {entry.alg} key {entry.kid}: stops signing when the new key "
                       f"starts, retires at {format_time(entry.retires_at)}")
