"""`authserver init`, `authserver run [--demo]`, `authserver purge`."""
from __future__ import annotations

import importlib.util
import json
import os
import threading
from datetime import timedelta

import click
from flask import current_app
from flask.cli import with_appcontext
from werkzeug.serving import make_server, run_simple

from .. import clock, security
from ..accounts import services as accounts
from ..accounts import sessions
from ..accounts.models import (BrowserSession, LoginThrottle, SignIn, UpstreamLogin,
                              WebAuthnChallenge)
from ..audit import SecurityEvent
from ..accounts.factors import passkey
from ..config import PROJECT_ROOT, Defaults, check_webauthn, derive_webauthn
from ..db import delete_in_batches
from ..extensions import db
from ..mail.models import OutboxMessage
from ..oauth import services as oauth
from ..oauth.models import AuthorizationCode
from ..passwords.models import CodeSend, ResetCode
from ..schema import init_schema
from ..tokens import keyring
from ..tokens import services as tokens


INIT_OUTCOMES = {
    "present": "this issuer's key set, from the database",
    "seeded": "the keys folder's keys, now the issuer's key set in the database",
    "created": "a new key set, in the database",
    "completed": "the issuer's key set, with a new key for an algorithm that had none",
}


@click.command("init")
@with_appcontext
def init_command():
    """Create or upgrade the schema and the signing keys (idempotent)."""
    init_schema(current_app)
    outcome = keyring.start_app(current_app)
    click.echo(f"Schema is up to date; signing keys: {INIT_OUTCOMES[outcome]} (a copy is in "
               f"{current_app.config['KEYS_DIR']}).")


@click.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--demo", is_flag=True,
              help="Seed a demo app and demo users first, and serve the demo app on port + 1.")
@with_appcontext
def run_command(host, port, demo):
    """Serve Authserver (the development server; use gunicorn wsgi:app in production)."""
    app = current_app._get_current_object()
    if "AUTHSERVER_ISSUER" not in os.environ and app.config["ISSUER"] == Defaults.ISSUER:
        app.config["ISSUER"] = f"http://{host}:{port}"
        derive_webauthn(app.config)
        check_webauthn(app.config)
    init_schema(app)
    keyring.start_app(app)
    passkey.startup_notice(app)
    stop_demo = None
    if demo and app.config["ORGANISATION_NAME"] == Defaults.ORGANISATION_NAME:
        app.config["ORGANISATION_NAME"] = DEMO_ORGANISATION
    if demo:
        app.config["MAIL_CONSOLE_SHOWS_CODES"] = True  # the demo is read on this console
        data = seed_demo(app, port)
        print_demo(app, data)
        stop_demo = start_demo_app(app, data, host, port + 1)
    click.echo(f"Authserver for issuer {app.config['ISSUER']} on http://{host}:{port}/")
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
    finally:
        if stop_demo:
            stop_demo()


DEMO_ORGANISATION = "Example Organisation"
DEMO_USERS = (("alice", "alice@example.com", "Alice Example", False),
              ("admin", "admin@example.com", "Demo Administrator", True))


def seed_demo(app, port: int) -> dict:
    """Create the demo client and users once; their credentials live in the instance folder."""
    path = os.path.join(app.instance_path, "demo.json")
    data = {}
    if os.path.exists(path):
        with open(path) as fh:
            data = json.load(fh)
    users = data.setdefault("users", {})
    for username, email, name, is_admin in DEMO_USERS:
        user = accounts.find_by_login(username)
        if user is None:
            password = security.random_token(9)
            user = accounts.new_user(username, email, name, admin=is_admin)
            accounts.set_password(user, password)
            db.session.commit()
            users[username] = password
        elif users.get(username) and not security.verify_password(user.password_hash,
                                                                   users[username]):
            users[username] = None  # changed since seeding: never print a stale password
    base = f"http://127.0.0.1:{port + 1}"
    known = data.get("client") or {}
    # A new port means a new redirect URI: register a client for it rather than edit one.
    if known.get("base") != base or oauth.query_client(known.get("client_id")) is None:
        client, secret = oauth.create_client(
            "Demo app", [f"{base}/callback"], post_logout_redirect_uris=[f"{base}/"],
            backchannel_logout_uri=f"{base}/backchannel-logout")
        data["client"] = {"client_id": client.client_id, "client_secret": secret,
                          "redirect_uri": f"{base}/callback", "base": base}
    data["issuer"] = app.config["ISSUER"]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    return data


def print_demo(app, data: dict) -> None:
    issuer = app.config["ISSUER"]
    click.echo("\n=== Authserver demo ===")
    click.echo(f"Sign in at {issuer}/login with:")
    for username, password in data["users"].items():
        shown = password or "(changed since the demo was seeded: use the one you chose)"
        click.echo(f"  user name: {username:<8} password: {shown}")
    click.echo(f"Users module (as admin): {issuer}/admin/users")
    c = data["client"]
    click.echo(f"Demo client: client_id={c['client_id']} client_secret={c['client_secret']}")
    click.echo(f"  redirect_uri={c['redirect_uri']}")
    click.echo(f"  discovery: {issuer}/.well-known/openid-configuration")
    click.echo("Mail goes to the console and to instance/mail/*.eml.")
    click.echo("The `authserver` command is in .venv/bin: run `. .venv/bin/activate` in another "
               "terminal to use it.\n")


DEMO_APP = PROJECT_ROOT / "examples" / "demo_app" / "app.py"


def start_demo_app(app, data: dict, host: str, port: int):
    """Serve examples/demo_app in a thread of this process; returns the function that stops it.

    A thread, not a subprocess: it ends with the issuer whatever way the issuer ends.
    """
    if not DEMO_APP.exists():
        click.echo(f"(No demo app at {DEMO_APP}: run the issuer from a checkout to get one.)")
        return None
    spec = importlib.util.spec_from_file_location("authserver_demo_app", DEMO_APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    demo = module.create_app({**data["client"], "issuer": app.config["ISSUER"]})
    server = make_server(host, port, demo, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="demo-app", daemon=True)
    thread.start()
    click.echo(f"Demo app: open {data['client']['base']}/ and sign in as alice")

    def stop():
        server.shutdown()
        thread.join(5)
    return stop


@click.command("purge")
@click.option("--events-days", default=365, show_default=True, help="Keep events this long.")
@click.option("--batch", default=1000, show_default=True, help="Rows deleted per transaction.")
@with_appcontext
def purge_command(events_days, batch):
    """Delete expired codes, tokens, sessions, sent mail and old events (batched, idempotent)."""
    now, day = clock.now(), timedelta(days=1)
    expired = sessions.end_expired_sessions(now)  # their apps hear of it (back-channel logout)
    db.session.commit()
    click.echo(f"expired sessions ended: {len(expired)}")
    counts = {"refresh_tokens+revoked_jtis": tokens.purge_expired(now, batch)}
    for label, model, condition in (
        ("authorization_codes", AuthorizationCode, AuthorizationCode.expires_at < now - day),
        ("reset_codes", ResetCode, ResetCode.expires_at < now - day),
        ("code_sends", CodeSend, CodeSend.sent_at < now - day),
        ("browser_sessions", BrowserSession, BrowserSession.expires_at < now),
        ("sign_ins", SignIn, SignIn.expires_at < now - day),
        ("webauthn_challenges", WebAuthnChallenge, WebAuthnChallenge.expires_at < now - day),
        ("upstream_logins", UpstreamLogin, UpstreamLogin.expires_at < now - day),
        ("login_throttles", LoginThrottle, LoginThrottle.updated_at < now - day),
        ("sent_mail", OutboxMessage, OutboxMessage.sent_at < now - 30 * day),
        ("security_events", SecurityEvent, SecurityEvent.created_at < now - events_days * day),
    ):
        counts[label] = delete_in_batches(db.session, model, condition, batch)
    for label, n in counts.items():
        click.echo(f"{label}: {n} deleted")
