"""WSGI entry point: `gunicorn wsgi:app`.

Settings come from the environment (AUTHSERVER_*, DATABASE_URL, MAIL_*) or
instance/authserver.cfg. The schema is brought up to date on start, under a lock, so
any number of workers and machines can start together.
"""
from authserver import create_app
from authserver.accounts.factors import passkey
from authserver.schema import init_schema

app = create_app()
init_schema(app)
passkey.startup_notice(app)
