"""The application factory: config, extensions, keys, mail, OAuth server, blueprints, CLI."""
from __future__ import annotations

import os
import uuid
from urllib.parse import parse_qs, urlsplit

from flask import Flask, Response, abort, g, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from prometheus_client import CONTENT_TYPE_LATEST, Gauge
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix

from . import health, security
from .accounts.passkey_views import bp as passkeys_bp
from .accounts.views import bp as accounts_bp
from .accounts.upstream_views import bp as upstream_bp
from .commands import register_commands
from .admin.api import bp as admin_api_bp
from .admin.views import bp as admin_bp
from . import models  # noqa: F401  (every table registered before Alembic or a query runs)
from .config import (PROJECT_ROOT, check_config, create_sqlite_file, load_config,
                     make_instance_folder)
from .errors import register_error_handlers
from .extensions import csrf, db, limiter, mail, migrate
from .mail.sender import status as mail_status
from .mail import sender
from .observability import REGISTRY, exposition, init_logging, init_request_metrics
from .oauth import cors
from .oauth import services as oauth_services
from .oauth import backchannel
from .oauth.discovery import bp as discovery_bp, serve_well_known
from .oauth.server import build_server
from .oauth.views import bp as oauth_bp
from .passwords.views import bp as passwords_bp
from .accounts import sessions
from .tokens import keyring
from .tokens import services as tokens_services

# Referrer-Policy same-origin: no URL (codes, state, login hints) leaves for another origin,
# while same-origin form posts keep the Referer that Flask-WTF's strict check needs on https
# (WTF_CSRF_SSL_STRICT); no-referrer made every form fail there (issue 17).
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self' "
                               "http: https:; base-uri 'none'; object-src 'none'",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def create_app(overrides: dict | None = None) -> Flask:
    """Build one independent app; tests pass overrides and never read the environment."""
    instance_path = (overrides or {}).get("INSTANCE_PATH") or os.environ.get(
        "AUTHSERVER_INSTANCE_PATH") or str(PROJECT_ROOT / "instance")
    app = Flask(__name__, instance_path=os.path.abspath(instance_path),
                template_folder=str(PROJECT_ROOT / "templates"),
                static_folder=str(PROJECT_ROOT / "static"), static_url_path="/static")
    make_instance_folder(app.instance_path)
    load_config(app, overrides)
    check_config(app)
    create_sqlite_file(app.config["SQLALCHEMY_DATABASE_URI"])
    _init_extensions(app)
    keyring.init_app(app)
    sessions.on_session_end(app, tokens_services.revoke_session_tokens)
    backchannel.init_app(app)
    build_server(app)
    for bp in (health.bp, discovery_bp, oauth_bp, accounts_bp, passkeys_bp, upstream_bp,
               passwords_bp,
               admin_bp, admin_api_bp):
        app.register_blueprint(bp)
    csrf.exempt(oauth_bp)
    csrf.exempt(admin_api_bp)
    register_error_handlers(app)
    _init_request_hooks(app)
    _init_favicon(app)
    _init_login_context(app)
    cors.init_app(app, find_client=oauth_services.query_client_cached,
                  all_origins=oauth_services.all_web_origins)
    init_request_metrics(app)
    init_logging(app)
    _init_metrics_endpoint(app)
    serve_well_known(app, SECURITY_HEADERS)
    sender.init_app(app)
    register_commands(app)
    return app


def _init_extensions(app: Flask) -> None:
    app.config["RATELIMIT_STORAGE_URI"] = app.config["RATELIMIT_STORAGE_URI"]
    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    mail.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", _sqlite_pragmas)
    x_for, x_proto = int(app.config["PROXY_FIX_X_FOR"]), int(app.config["PROXY_FIX_X_PROTO"])
    if x_for or x_proto:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=x_for, x_proto=x_proto)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across crashes of the process
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _init_login_context(app: Flask) -> None:
    """The sign-in page names the app the user is signing in to, when a request is pending."""
    @app.context_processor
    def signing_in_to():
        if not has_request_context() or request.endpoint != "accounts.login":
            return {"signing_in_to": None}
        pending = security.safe_next(request.args.get("next"))
        client_id = parse_qs(urlsplit(pending).query).get("client_id", [""])[0] if pending else ""
        client = oauth_services.query_client_cached(client_id) if client_id else None
        return {"signing_in_to": client.name if client else None}


def _init_favicon(app: Flask) -> None:
    """Browsers ask for /favicon.ico whatever the page says; answer with the SVG icon."""
    @app.get("/favicon.ico")
    def favicon():
        return app.send_static_file("favicon.svg")


# Endpoints called by apps with tokens and client credentials, never with the browser's
# cookie: Flask's cookie session is neither read nor written there.
NO_COOKIE_SESSION_PATHS = frozenset({"/token", "/revoke", "/introspect", "/userinfo"})


@limiter.request_filter
def _app_endpoint() -> bool:
    """Flask-Limiter has no limit on these paths (their limits are oauth/client_limits.py's):
    it skips its per-request evaluation there. Registered once, on the unbound extension."""
    return request.path in NO_COOKIE_SESSION_PATHS


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, skipped on NO_COOKIE_SESSION_PATHS (a null session:
    nothing parsed, nothing signed, no `Vary: Cookie`) and with its serializer built once."""

    def __init__(self):
        self._serializers = {}

    def get_signing_serializer(self, app):
        serializer = self._serializers.get(app.secret_key)
        if serializer is None:
            serializer = self._serializers[app.secret_key] = super().get_signing_serializer(app)
        return serializer

    def open_session(self, app, request):
        if request.path in NO_COOKIE_SESSION_PATHS:
            return self.make_null_session(app)
        return super().open_session(app, request)


def _init_request_hooks(app: Flask) -> None:
    app.session_interface = _SessionInterface()

    @app.before_request
    def assign_request_id():
        g.request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex

    @app.after_request
    def security_headers(resp):
        for name, value in SECURITY_HEADERS.items():
            resp.headers.setdefault(name, value)
        resp.headers["X-Request-Id"] = g.get("request_id", "")
        if request.endpoint and not request.path.startswith(("/static/", "/.well-known/")):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp


# Set at each scrape; with several workers the last scrape's values are the ones shown.
MAIL_GAUGE = Gauge("authserver_mail_messages", "Outbox messages by state", ["state"],
                   registry=REGISTRY, multiprocess_mode="mostrecent")
MAIL_AGE = Gauge("authserver_mail_oldest_queued_seconds", "Age of the oldest queued message",
                 registry=REGISTRY, multiprocess_mode="mostrecent")


def _init_metrics_endpoint(app: Flask) -> None:
    """GET /metrics (Prometheus text format) when METRICS_ENABLED; otherwise 404."""
    @app.get("/metrics")
    def metrics():
        if not app.config["METRICS_ENABLED"]:
            abort(404)
        info = mail_status(db.session)
        for state in ("queued", "sent", "failed"):
            MAIL_GAUGE.labels(state=state).set(info[state])
        MAIL_AGE.set(info["oldest_queued_age"] or 0)
        return Response(exposition(), mimetype=CONTENT_TYPE_LATEST)
