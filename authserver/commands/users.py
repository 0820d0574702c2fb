"""`authserver users ...` (SPEC section 6)."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from ..accounts import services as accounts
from ..accounts import upstreams
from ..admin import services as admin
from ..errors import AuthserverError
from ..mail import sender

users = AppGroup("users", help="Create, list, reset, disable and enable users.")


def _fail(exc: AuthserverError):
    raise click.ClickException(exc.message or str(exc))


def _deliver_now() -> None:
    """A CLI process has no sender thread: try the queued mail once now.

    Whatever fails stays in the outbox for a server's sender to retry, so nothing is lost.
    """
    app = current_app._get_current_object()
    attempted, sent = sender.send_pending(app, app.extensions[sender.TRANSPORT_EXT])
    if attempted > sent:
        click.echo(f"{attempted - sent} email(s) could not be sent yet; they stay queued "
                   "and are retried (see `authserver mail status`).", err=True)


@users.command("create")
@click.argument("username")
@click.option("--email", required=True)
@click.option("--name", default="")
@click.option("--password", default=None, help="Set this password (it is checked by the policy).")
@click.option("--temporary", is_flag=True, help="Email a generated temporary password (default).")
@click.option("--admin", "is_admin", is_flag=True, help="Give the admin role.")
def create(username, email, name, password, temporary, is_admin):
    """Create USERNAME; without --password a temporary password is emailed to the user."""
    if password is not None and temporary:
        raise click.UsageError("Use either --password or --temporary, not both.")
    try:
        user = admin.create_user(username, email, name, password=password, admin=is_admin)
    except AuthserverError as exc:
        _fail(exc)
    click.echo(f"Created user {user.username} (id {user.id}, {user.email}).")
    _deliver_now()
    if password is None:
        click.echo(f"A temporary password was emailed to {user.email}; it is valid for 7 days.")


@users.command("list")
@click.option("--search", "q", default="", help="Part of a user name, email or display name.")
@click.option("--limit", default=50, show_default=True)
def list_(q, limit):
    """List users, optionally filtered."""
    rows, total = accounts.find_users(q, limit=limit)
    click.echo(f"{'ID':>6}  {'USERNAME':<24} {'EMAIL':<32} {'STATE':<22} NAME")
    for u in rows:
        click.echo(f"{u.id:>6}  {u.username:<24} {u.email:<32} {u.state:<22} {u.name}")
    if total > accounts.COUNT_CAP:
        click.echo(f"{len(rows)} of more than {accounts.COUNT_CAP:,} users")
    else:
        click.echo(f"{len(rows)} of {total} users")


def _verb(name: str, action, done: str):
    @users.command(name)
    @click.argument("username")
    def command(username):
        try:
            user = admin.find_user_or_raise(username)
            action(user, None)
        except AuthserverError as exc:
            _fail(exc)
        _deliver_now()
        click.echo(done.format(user=user))
    command.__doc__ = done.split(":")[0]
    return command


_verb("reset", admin.reset_user,
      "Reset requested for {user.username}: a code was emailed to {user.email}.")
_verb("disable", admin.disable_user, "Disabled {user.username}: sessions and tokens ended.")
_verb("enable", admin.enable_user, "Enabled {user.username}.")
_verb("reset-mfa", admin.reset_mfa,
      "Reset two-step sign-in of {user.username}: the authenticator app and recovery codes "
      "were removed, sessions ended, and {user.email} was told.")


@users.command("licence")
@click.argument("username")
@click.argument("client_id")
@click.option("--remove", is_flag=True, help="Take the licence away instead.")
def licence(username, client_id, remove):
    """Give (or with --remove take) USERNAME's licence for CLIENT_ID."""
    try:
        user = admin.find_user_or_raise(username)
        client = admin.set_licence(user, client_id, not remove, None)
    except AuthserverError as exc:
        _fail(exc)
    verb = "Removed the licence of" if remove else "Gave a licence to"
    click.echo(f"{verb} {user.username} for {client.client_id} ({client.name}).")


@users.command("link")
@click.argument("username")
@click.option("--upstream", "upstream_name", required=True, help="The upstream's NAME.")
@click.option("--subject", required=True,
              help="The identity's `sub` at the upstream (Entra ID: TID:OID).")
def link(username, upstream_name, subject):
    """Link an upstream identity to USERNAME: it then signs in to this account."""
    try:
        user = admin.find_user_or_raise(username)
        upstream = upstreams.find_or_raise(upstream_name)
        upstreams.link(user, upstream, subject)
    except AuthserverError as exc:
        _fail(exc)
    click.echo(f"Linked {upstream.name} identity {subject.strip()} to {user.username}.")


@users.command("unlink")
@click.argument("username")
@click.option("--upstream", "upstream_name", required=True, help="The upstream's NAME.")
def unlink(username, upstream_name):
    """Remove USERNAME's identity at an upstream."""
    try:
        user = admin.find_user_or_raise(username)
        upstream = upstreams.find_or_raise(upstream_name)
        upstreams.unlink(user, upstream)
    except AuthserverError as exc:
        _fail(exc)
    click.echo(f"Unlinked {user.username}'s {upstream.name} identity.")
