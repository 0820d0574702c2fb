"""`authserver keys list|rotate|export|import`: the issuer's token signing keys.

The key set lives in the database, so each command acts for every machine of the issuer;
running servers pick a change up within KEYS_RELOAD_INTERVAL seconds.
"""
from __future__ import annotations

import os

import click
from flask import current_app
from flask.cli import AppGroup

from .. import clock
from ..errors import AuthserverError
from ..tokens import keyexport, keyfiles
from ..tokens.keyring import export_keys, fresh_keyring, import_app, rotate_app
from ..tokens.keyset import format_time

keys = AppGroup("keys", help="List, rotate, export and import the issuer's token signing keys.")

COLUMNS = ("KID", "ALG", "STATUS", "ACTIVATES_AT", "RETIRES_AT")
PASSPHRASE_ENV = "AUTHSERVER_KEYS_PASSPHRASE"


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
        keyring = fresh_keyring(current_app)
    except AuthserverError as exc:
        raise click.ClickException(exc.message) from exc
    rows = [COLUMNS] + [(e["kid"], e["alg"], e["status"], format_time(e["activates_at"]),
                         format_time(e["retires_at"]) or "-")
                        for e in keyring.entries(clock.now())]
    click.echo(_table(rows))


@keys.command("rotate")
def rotate_command() -> None:
    """Publish new keys now on every machine; they sign after JWKS_CACHE_TTL.

    One RS256 and one ES256 key. The keys they replace stay published until
    every token they signed has expired (the longer of ACCESS_TOKEN_TTL and
    ID_TOKEN_TTL, plus KEY_RETIRE_SLACK). Refused while the keys of an earlier
    rotation do not sign yet (the message says when they do). Private material is
    never shown.
    """
    try:
        new, retiring = rotate_app(current_app, clock.now())
    except AuthserverError as exc:
        raise click.ClickException(exc.message) from exc
    for entry in new:
        click.echo(f"new {entry.alg} key {entry.kid}: published now, "
                   f"signs from {format_time(entry.activates_at)}")
    for entry in retiring:
        click.echo(f"old {entry.alg} key {entry.kid}: stops signing when the new key "
                   f"starts, retires at {format_time(entry.retires_at)}")
    click.echo(f"Every server picks this up within {current_app.config['KEYS_RELOAD_INTERVAL']} "
               "seconds (KEYS_RELOAD_INTERVAL).")


passphrase_option = click.option(
    "--passphrase", envvar=PASSPHRASE_ENV, prompt=True, hide_input=True,
    help=f"Seals the file (scrypt + AES-256-GCM). Default: ${PASSPHRASE_ENV}, else a prompt.")


@keys.command("export")
@click.argument("file", type=click.Path(dir_okay=False))
@passphrase_option
def export_command(file: str, passphrase: str) -> None:
    """Write every key of the issuer's set, encrypted under a passphrase, to FILE (mode 0600).

    For moving the key set to another installation with `authserver keys import`.
    """
    try:
        exported = export_keys(current_app)
        data = keyexport.seal_keys(exported, passphrase)
    except AuthserverError as exc:
        raise click.ClickException(exc.message) from exc
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise click.ClickException(f"{file} exists; choose a new file name") from exc
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    click.echo(f"Exported {len(exported)} keys to {file}.")


@keys.command("import")
@click.argument("source", type=click.Path(exists=True))
@click.option("--replace", is_flag=True,
              help="Drop this installation's keys that are not in SOURCE.")
@click.option("--passphrase", envvar=PASSPHRASE_ENV, default=None, hide_input=True,
              help=f"The export's passphrase. Default: ${PASSPHRASE_ENV}, else a prompt.")
def import_command(source: str, replace: bool, passphrase: str | None) -> None:
    """Make the keys in SOURCE the issuer's key set, schedule and all.

    SOURCE is a file from `authserver keys export`, or a keys folder (keys.json and PEMs)
    of an installation from before keys lived in the database.
    """
    try:
        if os.path.isdir(source):
            imported = keyfiles.read_folder(source)
        else:
            if passphrase is None:
                passphrase = click.prompt("Passphrase", hide_input=True)
            with open(source, "rb") as fh:
                imported = keyexport.open_keys(fh.read(), passphrase)
        kids, dropped = import_app(current_app, imported, clock.now(), replace=replace)
    except AuthserverError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"Imported {len(kids)} keys: {', '.join(kids)}.")
    if dropped:
        click.echo(f"Dropped {len(dropped)} keys: {', '.join(dropped)}.")
    click.echo(f"Every server picks this up within {current_app.config['KEYS_RELOAD_INTERVAL']} "
               "seconds (KEYS_RELOAD_INTERVAL).")
