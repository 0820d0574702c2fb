"""WSGI entry point: `gunicorn wsgi:app`.

Settings come from the environment (AUTHSERVER_*, DATABASE_URL, MAIL_*) or
instance/authserver.cfg. The schema is brought up to date on start, under a lock, so
any number of workers and machines can start together; then the process adopts the issuer's
signing key set from the database (or creates it), failing fast rather than on a request.
"""
from authserver import create_app
from authserver.accounts.factors import passkey
from authserver.schema import init_schema
from authserver.tokens.keyring import start_app

app = create_app()
init_schema(app)
start_app(app)
passkey.startup_notice(app)
