"""CLI command groups, registered on app.cli so `authserver` and `flask` share them."""
from flask import Flask

from .clients import clients
from .keys import keys
from .mail import mail_cli
from .secret_key import secret_key
from .server import init_command, purge_command, run_command
from .upstreams import upstreams
from .users import users


def register_commands(app: Flask) -> None:
    for command in (init_command, run_command, purge_command, users, upstreams, clients, keys,
                    mail_cli, secret_key):
        app.cli.add_command(command)
