"""Domain error base and the error pages / JSON bodies every failure ends on."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from . import clock
from .extensions import db, limiter

log = logging.getLogger("authserver")

JSON_PREFIXES = ("/api/", "/token", "/userinfo", "/revoke", "/introspect", "/.well-known/",
                 "/healthz", "/readyz")


class AuthserverError(Exception):
    """Base of every domain error; carries a message safe to show."""

    def __init__(self, message: str = "", **details):
        super().__init__(message)
        self.message = message
        self.details = details


class RetryLater(AuthserverError):
    """Refused for now, not for good: answered with `status` and a Retry-After header."""

    status = 429
    title = "Too many requests"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


def wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES)


def _problem(status: int, title: str, detail: str = ""):
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    resp = jsonify(body)
    resp.status_code = status
    resp.content_type = "application/problem+json"
    return resp


def _oauth_error(status: int, error: str, description: str):
    resp = jsonify({"error": error, "error_description": description})
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _page(status: int, title: str, message: str):
    template = "errors/400.html" if status < 500 else "errors/500.html"
    if status == 404:
        template = "errors/404.html"
    return render_template(template, title=title, message=message, status=status), status


def error_response(status: int, title: str, message: str):
    """The right error body for who is asking: problem JSON, OAuth JSON or a page."""
    if request.path.startswith("/api/"):
        return _problem(status, title, message)
    if request.path in ("/token", "/revoke", "/introspect"):
        code = "invalid_request" if status < 500 else "server_error"
        if status == 503:
            code = "temporarily_unavailable"
        return _oauth_error(status, code, message or title)
    if wants_json():
        return _problem(status, title, message)
    return _page(status, title, message)


def register_error_handlers(app: Flask) -> None:
    # Registered after db.init_app, so it runs before Flask-SQLAlchemy's own teardown.
    app.teardown_appcontext(release_session)

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        message = ("The form expired or was sent from another page. "
                   "Go back, reload the page and try again.")
        if app.config["SESSION_COOKIE_NAME"] not in request.cookies:
            message += (" Your browser did not send this site's cookie: if cookies are "
                        "blocked for this site, allow them first.")
        return error_response(400, "This form has expired", message)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code == 429:
            resp = error_response(429, "Too many requests",
                                  "Too many requests. Wait a little and try again.")
            return _with_header(resp, "Retry-After", str(_limit_reset()))
        resp = error_response(exc.code or 500, exc.name, exc.description or "")
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            allow = ", ".join(exc.valid_methods)
            if isinstance(resp, tuple):
                return resp[0], resp[1], {"Allow": allow}
            resp.headers["Allow"] = allow
        return resp

    @app.errorhandler(RetryLater)
    def retry_later(exc: RetryLater):
        """Busy (503) or over a limit (429): the same answer whoever is asking about which
        account, with when to come back."""
        _rollback()
        return _with_header(error_response(exc.status, exc.title, exc.message),
                            "Retry-After", str(exc.retry_after))

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def database_down(exc):
        log.error("database unavailable: %s", type(exc).__name__)
        _rollback()
        resp = error_response(503, "Service unavailable",
                              "The service is briefly unavailable. Try again in a moment.")
        return _with_header(resp, "Retry-After", "5")

    @app.errorhandler(DataError)
    def value_refused(exc):
        """A value from the request that the database cannot hold (a NUL byte in PostgreSQL
        text, a number out of range): the request is bad; the service is not down."""
        log.warning("database refused a value from the request: %s", type(exc.orig).__name__)
        _rollback()
        return error_response(400, "Bad request",
                              "The request contains a value that cannot be used.")

    @app.errorhandler(Exception)
    def unexpected(exc):
        log.exception("unhandled error on %s %s", request.method, request.path)
        _rollback()
        return error_response(500, "Something went wrong",
                              "Something went wrong on our side. Try again in a moment.")


def _limit_reset() -> int:
    """Seconds until the Flask-Limiter limit that refused this request has room again."""
    current = limiter.current_limit
    if current is None:
        return 60
    return max(1, int(current.reset_at) - clock.timestamp())


def _with_header(resp, name: str, value: str):
    if isinstance(resp, tuple):
        body, status = resp
        return body, status, {name: value}
    resp.headers[name] = value
    return resp


def _rollback() -> None:
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - the database may be gone; nothing more to do
        pass


def release_session(_exc: BaseException | None = None) -> None:
    """End the app context's session before Flask-SQLAlchemy removes it (teardown).

    When the database dropped the connection during the request (a restart, a failover),
    closing it fails; the connection is then discarded (invalidated) instead, so a response
    already made is sent rather than turned into a 500 by the cleanup.
    """
    if not db.session.registry.has():
        return  # this request never opened a session (client_credentials): nothing to end
    try:
        db.session.close()
    except DBAPIError:
        log.warning("database connection lost at the end of a request; discarded")
        try:
            db.session.invalidate()
        except Exception:  # noqa: BLE001 - nothing left to clean up
            pass
