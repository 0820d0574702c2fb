"""WSGI entry point: `gunicorn wsgi:app`.

Settings come from the environment (AUTHSERVER_*, DATABASE_URL, MAIL_*) or
instance/authserver.cfg. The schema is brought up to date on start, under a lock, so
any number of workers and machines can start together; then the process adopts the issuer's
signing key set from the database (or creates it), failing fast rather than on a request.

A refused setting (a short or placeholder secret key, ...) is one line on stderr, no
traceback, and exit status 4: gunicorn's "App failed to load", so its master stops instead
of starting the worker again and again.
"""
import sys

from authserver import create_app
from authserver.accounts.factors import passkey
from authserver.config import ConfigError
from authserver.schema import init_schema
from authserver.tokens.keyring import start_app

APP_LOAD_ERROR = 4  # gunicorn.arbiter.Arbiter.APP_LOAD_ERROR

try:
    app = create_app()
except ConfigError as exc:
    print(f"Error: {exc.format_message()}", file=sys.stderr, flush=True)
    sys.exit(APP_LOAD_ERROR)
init_schema(app)
start_app(app)
passkey.startup_notice(app)
