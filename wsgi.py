"""WSGI entry point: `gunicorn wsgi:app`.

Settings come from the environment (AUTHSERVER_*, DATABASE_URL, MAIL_*) or
instance/authserver.cfg. The schema is brought up to date on start, under a lock, so
any number of workers and machines can start together; then the process adopts the issuer's
signing key set from the database (or creates it), failing fast rather than on a request.

A refused setting (a short or placeholder secret key, ...) or a database that cannot be
reached at start is one line on stderr, no traceback, and exit status 4: gunicorn's "App
failed to load", so its master stops instead of starting the worker again and again (the
systemd unit starts it again two seconds later: Restart=on-failure).
"""
import sys

from sqlalchemy.exc import OperationalError

from authserver import create_app
from authserver.accounts.factors import passkey
from authserver.config import ConfigError
from authserver.db import unreachable
from authserver.schema import init_schema
from authserver.tokens.keyring import start_app

APP_LOAD_ERROR = 4  # gunicorn.arbiter.Arbiter.APP_LOAD_ERROR


def _refuse(message: str):
    print(f"Error: {message}", file=sys.stderr, flush=True)
    sys.exit(APP_LOAD_ERROR)


try:
    app = create_app()
except ConfigError as exc:
    _refuse(exc.format_message())
try:
    init_schema(app)
    start_app(app)
except OperationalError as exc:
    _refuse(unreachable(exc))
passkey.startup_notice(app)
