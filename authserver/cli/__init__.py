"""`authserver` command line.

The commands themselves live in `authserver.commands` and are registered by create_app,
so `flask --app authserver users list` and `authserver users list` are the same command.
`authserver` itself shows only what works here: Flask's `--app`, `--env-file` (which needs
python-dotenv) and `--debug` are not offered, and log lines stay quiet on a terminal unless
`--verbose` (the server itself, `authserver run`, logs at info as always).
"""
from __future__ import annotations

import logging

import click
from flask.cli import FlaskGroup, ScriptInfo
from sqlalchemy.exc import OperationalError

from ..app import create_app
from ..config import ConfigError
from ..db import unreachable

_FLASK_ONLY = {"env_file", "app", "debug"}


class AuthserverGroup(FlaskGroup):
    """FlaskGroup without the options that do not apply to a fixed application."""

    def __init__(self, **extra) -> None:
        super().__init__(**extra)
        self.params = [p for p in self.params if p.name not in _FLASK_ONLY]

    def _load_plugin_commands(self) -> None:
        """No `flask.commands` plugins (Flask-Limiter's `limiter` group is not ours)."""
        self._loaded_plugin_commands = True

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return click.Group.parse_args(self, ctx, args)

    def invoke(self, ctx: click.Context):
        """A database that cannot be reached (down, wrong URL) ends a command with one line
        and status 1, like a refused setting, not a driver traceback."""
        try:
            return super().invoke(ctx)
        except OperationalError as exc:
            raise click.ClickException(unreachable(exc)) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        """As FlaskGroup's, but a refused setting (ConfigError) ends the help with its one
        line and status 1, where FlaskGroup would print the traceback and go on. (A command
        loads the app in get_command, which lets the click exception through already.)"""
        try:
            ctx.ensure_object(ScriptInfo).load_app()
        except ConfigError:
            raise
        except Exception:  # noqa: BLE001 - FlaskGroup's own loading below reports it
            pass
        return super().list_commands(ctx)


def _quiet_unless_verbose(ctx: click.Context, verbose: bool) -> None:
    if not verbose and ctx.invoked_subcommand != "run":
        logging.getLogger("authserver").setLevel(logging.WARNING)


@click.pass_context
def _main(ctx: click.Context, verbose: bool) -> None:
    _quiet_unless_verbose(ctx, verbose)


main = AuthserverGroup(
    name="authserver", create_app=create_app, add_default_commands=False,
    add_version_option=False, set_debug_flag=False, load_dotenv=False, callback=_main,
    params=[click.Option(["-v", "--verbose"], is_flag=True,
                         help="Show info log lines (security events) on the terminal.")],
    help="Authserver: an OAuth 2.0 / OpenID Connect identity provider.")
