"""`authserver` command line.

The commands themselves live in `authserver.commands` and are registered by create_app,
so `flask --app authserver users list` and `authserver users list` are the same command.
"""
from __future__ import annotations

from flask.cli import FlaskGroup

from ..app import create_app

main = FlaskGroup(name="authserver", create_app=create_app, add_default_commands=False,
                  add_version_option=False, set_debug_flag=False,
                  help="Authserver: an OAuth 2.0 / OpenID Connect identity provider.")
