"""`authserver upstreams add|list|remove` (SPEC sections 6 and 10)."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from ..accounts import upstreams as service
from ..errors import AuthserverError

upstreams = AppGroup("upstreams", help="Upstream OpenID providers people may sign in with.")


@upstreams.command("add")
@click.argument("name")
@click.option("--issuer", required=True, help="The provider's issuer URL.")
@click.option("--client-id", required=True)
@click.option("--client-secret", required=True)
@click.option("--label", default="", help="Shown as 'Sign in with LABEL' (default: NAME).")
@click.option("--domain", "domains", multiple=True,
              help="An email domain --create-users accepts (repeat for more).")
@click.option("--create-users", is_flag=True,
              help="Create an account for a verified email in one of the --domain domains.")
def add(name, issuer, client_id, client_secret, label, domains, create_users):
    """Register the provider NAME; its redirect URI is ISSUER/login/upstream/NAME/callback."""
    try:
        upstream = service.add(name, issuer, client_id, client_secret, label=label,
                               domains=domains, create_users=create_users)
    except AuthserverError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"Added upstream {upstream.name} ({upstream.issuer}): the login page shows "
               f"'Sign in with {upstream.label}'.")
    click.echo("Register this redirect URI at the provider: "
               f"{_issuer()}/login/upstream/{upstream.name}/callback")


def _issuer() -> str:
    return current_app.config["ISSUER"].rstrip("/")


@upstreams.command("list")
def list_():
    """List the upstream providers."""
    rows = service.all_upstreams()
    click.echo(f"{'NAME':<16} {'LABEL':<20} {'CREATE USERS':<13} {'DOMAINS':<30} ISSUER")
    for u in rows:
        click.echo(f"{u.name:<16} {u.label:<20} {'yes' if u.create_users else 'no':<13} "
                   f"{','.join(u.domains) or '-':<30} {u.issuer}")
    click.echo(f"{len(rows)} upstream(s)")


@upstreams.command("remove")
@click.argument("name")
def remove(name):
    """Remove NAME and every identity linked through it."""
    try:
        count = service.remove(name)
    except AuthserverError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"Removed upstream {name.lower()} and {count} linked identit"
               f"{'y' if count == 1 else 'ies'}.")
