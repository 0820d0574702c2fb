"""Settings: defaults, the instance file, the environment, then test overrides."""
from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import click
from flask import Flask
from limits import parse_many
from sqlalchemy.engine import make_url

from . import outbound
from .sqlite_writes import WriterQueueConnection

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MIN_SECRET_LENGTH = 32
# The example value of deploy/authserver.env: a server must never start with it.
PLACEHOLDER_SECRETS = frozenset({"change-me-to-64-random-characters-shared-by-every-machine"})


class ConfigError(click.ClickException, RuntimeError):
    """A setting that would make the server unsafe or broken, refused at start; the message
    names the setting and what to set. A click exception, so `authserver ...` and
    `flask --app authserver ...` print it as one line and exit 1 (no traceback); wsgi.py does
    the same under gunicorn."""


class Defaults:
    ISSUER = "http://127.0.0.1:5000"
    SECRET_KEY = None  # generated into the instance folder on first start
    KEYS_DIR = str(PROJECT_ROOT / "keys")
    DATABASE_URL = None  # SQLite in the instance folder

    ACCESS_TOKEN_TTL = 3600
    ID_TOKEN_TTL = 3600
    REFRESH_TOKEN_TTL = 30 * 86400
    AUTHORIZATION_CODE_TTL = 60
    RESET_CODE_TTL = 3600
    RESET_CODE_MAX_TRIES = 5
    RESEND_INTERVAL = 60
    RESEND_MAX_PER_HOUR = 5
    TEMP_PASSWORD_TTL = 7 * 86400
    LOOP_MAX_TRIPS = 5
    LOOP_WINDOW = 20
    LOOP_REDEEMED_MAX_TRIPS = 19
    LOOP_REDEEMED_WINDOW = 60
    REFRESH_REUSE_GRACE = 0
    CLIENT_CACHE_TTL = 10
    UPSTREAM_CACHE_TTL = 10  # the sign-in page's upstream buttons, per process
    JWKS_CACHE_TTL = 3600
    KEY_RETIRE_SLACK = 300
    KEYS_RELOAD_INTERVAL = 10  # seconds between two checks of the key set's generation
    SECRET_KEY_FALLBACKS = ()  # earlier secret keys: still open sealed values and sessions

    PASSWORD_MIN_LENGTH = 8
    PASSWORD_MAX_LENGTH = 256
    # argon2id at the cheapest in CPU of OWASP's equivalent settings (m=7 MiB, t=5, p=1, also
    # Keycloak's): about 18.5 ms of one core per check where m=19 MiB, t=2 took 23.4 ms;
    # existing hashes are upgraded at their next sign-in. docs/capacity.md.
    PASSWORD_HASH_TIME_COST = 5
    PASSWORD_HASH_MEMORY_COST = 7168
    PASSWORD_HASH_PARALLELISM = 1
    PASSWORD_HASHER = None  # argon2id; or "module:name" of a hasher (tests inject a stub)
    # Concurrent hashes per process (None: one per core); deploy/gunicorn.conf.py sets
    # cores / workers. Beyond it a check waits PASSWORD_HASH_WAIT_MS, then answers 503.
    PASSWORD_HASH_CONCURRENCY = None
    PASSWORD_HASH_WAIT_MS = 500
    PASSWORD_HASH_BUSY_RETRY_AFTER = 2
    LOGIN_MAX_FAILURES = 5
    LOGIN_THROTTLE_BASE = 2
    LOGIN_THROTTLE_MAX = 900
    # The second step (SPEC section 8): who must have one, and its throttle.
    MFA_REQUIRED = "none"  # none | admins | all
    UPSTREAM_TRUST_MFA = False  # skip our second step when an upstream ID token says amr mfa
    MFA_MAX_FAILURES = 5
    MFA_THROTTLE_BASE = 30
    MFA_THROTTLE_MAX = 3600
    # Passkeys (SPEC section 9): the relying-party ID, by default the issuer's host. Set it
    # to a parent domain to share passkeys across subdomains (docs/passkeys.md).
    WEBAUTHN_RP_ID = None

    ACCESS_TOKEN_ALG = "RS256"
    ID_TOKEN_ALG = "RS256"
    ORGANISATION_NAME = "your organisation"
    ADMIN_CONTACT = "the administrator"

    MAIL_TRANSPORT = None  # smtp when MAIL_SERVER is set, else console
    MAIL_CONSOLE_SHOWS_CODES = None  # True when MAIL_TRANSPORT=console is set, or run --demo
    MAIL_DEFAULT_SENDER = "Authserver <no-reply@localhost>"
    MAIL_SENDER_THREAD = True
    MAIL_RETRY_MAX = 3600
    MAIL_MAX_ATTEMPTS = 20
    MAIL_TIMEOUT = 10
    MAIL_CA_FILE = None  # PEM file of the CA(s) the SMTP server's certificate must chain to;
    # unset: the system CAs. Environment: AUTHSERVER_MAIL_CA_FILE.
    CA_BUNDLE = None  # the same for every other outbound HTTPS call (AUTHSERVER_CA_BUNDLE)
    OUTBOUND_TIMEOUT = 10  # seconds, connect and each read, for outbound HTTPS

    RATELIMIT_STORAGE_URI = "memory://"
    RATELIMIT_ENABLED = True
    # A Redis outage must not take sign-in down: limits fail open (logged); the login
    # throttle and code tries live in the database and still hold.
    RATELIMIT_SWALLOW_ERRORS = True
    RATELIMIT_STORAGE_TIMEOUT = 1
    RATELIMIT_LOGIN = "30 per minute"
    RATELIMIT_FORGOT = "20 per minute"
    # Failed password checks (sign-in and account pages) per client address, per /24 or /56
    # network, and for the whole deployment: over the budget, names without an account are
    # answered without hashing. docs/limits.md has every limit in one table.
    RATELIMIT_LOGIN_FAILURES_ADDRESS = "20 per minute"
    RATELIMIT_LOGIN_FAILURES_PREFIX = "60 per minute"
    RATELIMIT_LOGIN_FAILURES_GLOBAL = "30 per minute"
    RATELIMIT_TOKEN = None  # every /token request per address: off, healthy load is not abuse
    RATELIMIT_TOKEN_AUTH_FAILURES_ADDRESS = "30 per minute"
    RATELIMIT_TOKEN_AUTH_FAILURES_CLIENT = "30 per minute"
    RATELIMIT_TOKEN_PER_CLIENT = None  # an optional quota of token requests per client
    # Off: Flask-Limiter would put X-RateLimit-* on every page of a limited route and a
    # Retry-After of its window on every answer, overriding a busy page's own; the 429
    # answers carry Retry-After from errors.py.
    RATELIMIT_HEADERS_ENABLED = False
    PROXY_FIX_X_FOR = 0
    PROXY_FIX_X_PROTO = 0
    METRICS_ENABLED = False

    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session cookie
    # On https a form post needs a same-origin Referer (pages send Referrer-Policy: same-origin).
    WTF_CSRF_SSL_STRICT = True
    MAX_CONTENT_LENGTH = 1024 * 1024
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    DATABASE_CONNECT_TIMEOUT = 5  # a request fails with 503 instead of hanging on a dead host


LIMIT_SETTINGS = ("RATELIMIT_LOGIN", "RATELIMIT_FORGOT", "RATELIMIT_TOKEN",
                  "RATELIMIT_LOGIN_FAILURES_ADDRESS", "RATELIMIT_LOGIN_FAILURES_PREFIX",
                  "RATELIMIT_LOGIN_FAILURES_GLOBAL", "RATELIMIT_TOKEN_AUTH_FAILURES_ADDRESS",
                  "RATELIMIT_TOKEN_AUTH_FAILURES_CLIENT", "RATELIMIT_TOKEN_PER_CLIENT")

_MAIL_ENV = ("MAIL_SERVER", "MAIL_PORT", "MAIL_USE_TLS", "MAIL_USE_SSL",
             "MAIL_USERNAME", "MAIL_PASSWORD", "MAIL_DEFAULT_SENDER", "MAIL_TRANSPORT",
             "MAIL_TIMEOUT")


def load_config(app: Flask, overrides: dict | None) -> None:
    """Defaults, then instance/authserver.cfg, then AUTHSERVER_* and friends, then overrides."""
    app.config.from_object(Defaults)
    if overrides is None:
        app.config.from_pyfile("authserver.cfg", silent=True)
        app.config.from_prefixed_env("AUTHSERVER")
        if os.environ.get("DATABASE_URL"):
            app.config["DATABASE_URL"] = os.environ["DATABASE_URL"]
        for name in _MAIL_ENV:
            if name in os.environ:
                app.config[name] = _coerce(os.environ[name])
    else:
        app.config.update(overrides)
    _derive(app)


def _coerce(value: str):
    if value.isdigit():
        return int(value)
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _derive(app: Flask) -> None:
    cfg = app.config
    cfg["ISSUER"] = cfg["ISSUER"].rstrip("/")
    url = cfg.get("DATABASE_URL") or "sqlite:///" + os.path.join(app.instance_path, "authserver.db")
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url[len("postgres://"):]
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    cfg["SQLALCHEMY_DATABASE_URI"] = url
    if url.startswith("sqlite"):
        connect_args = {"timeout": 30}
        if _sqlite_file(url):  # writers queue for the file, woken at once (sqlite_writes.py)
            connect_args["factory"] = WriterQueueConnection
        cfg["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": connect_args,
                                            "hide_parameters": True}
    else:
        cfg["SQLALCHEMY_ENGINE_OPTIONS"] = _server_engine_options(cfg, url)
    if str(cfg["RATELIMIT_STORAGE_URI"]).startswith("redis"):
        timeout = float(cfg["RATELIMIT_STORAGE_TIMEOUT"])
        cfg["RATELIMIT_STORAGE_OPTIONS"] = {"socket_connect_timeout": timeout,
                                            "socket_timeout": timeout,
                                            **(cfg.get("RATELIMIT_STORAGE_OPTIONS") or {})}
    if cfg.get("MAIL_CONSOLE_SHOWS_CODES") is None:
        # Only a console chosen explicitly (or `run --demo`) shows codes; the implicit
        # console of a server without MAIL_SERVER does not: a console is read by others.
        cfg["MAIL_CONSOLE_SHOWS_CODES"] = cfg.get("MAIL_TRANSPORT") == "console"
    if not cfg.get("MAIL_TRANSPORT"):
        cfg["MAIL_TRANSPORT"] = "smtp" if cfg.get("MAIL_SERVER") else "console"
    secure = cfg["ISSUER"].startswith("https://")
    cfg["SESSION_COOKIE_NAME"] = "__Host-authserver" if secure else "authserver_session"
    cfg["SESSION_COOKIE_SECURE"] = secure
    cfg["SESSION_COOKIE_HTTPONLY"] = True
    cfg["SESSION_COOKIE_SAMESITE"] = "Lax"
    cfg["PERMANENT_SESSION_LIFETIME"] = int(cfg["REFRESH_TOKEN_TTL"])
    cfg["PREFERRED_URL_SCHEME"] = "https" if secure else "http"
    derive_webauthn(cfg)
    if not cfg.get("SECRET_KEY"):
        cfg["SECRET_KEY"] = _instance_secret(app)
    cfg["SECRET_KEY"] = str(cfg["SECRET_KEY"])  # the env parser turns an all-digit key into int
    cfg["SECRET_KEY_FALLBACKS"] = _key_list(cfg.get("SECRET_KEY_FALLBACKS"))


def _key_list(value) -> list[str]:
    """SECRET_KEY_FALLBACKS as a list of strings, newest first. The environment form is a
    JSON list (`["old"]`) or keys separated by commas (`old,older`); a single key is a
    list of one, never a list of its characters."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, int)):
        value = (value.decode() if isinstance(value, bytes) else str(value)).split(",")
    return [str(key).strip() for key in value if str(key).strip()]


def derive_webauthn(cfg) -> None:
    """WEBAUTHN_ORIGIN (the issuer's origin), WEBAUTHN_RP_ID, and PASSKEYS_DISABLED_REASON:
    browsers refuse WebAuthn on an IP address, so passkeys are off with such an issuer."""
    parts = urlsplit(cfg["ISSUER"])
    host = (parts.hostname or "").lower()
    cfg["WEBAUTHN_ORIGIN"] = f"{parts.scheme}://{parts.netloc}".lower()
    # The setting as given, kept apart, so deriving again after a change of ISSUER (as
    # `authserver run --port` does) starts from it, not from the earlier issuer's host.
    configured = cfg.setdefault("WEBAUTHN_RP_ID_SETTING", cfg.get("WEBAUTHN_RP_ID"))
    cfg["WEBAUTHN_RP_ID"] = str(configured or host).lower().strip(".")
    cfg["PASSKEYS_DISABLED_REASON"] = None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return
    cfg["PASSKEYS_DISABLED_REASON"] = (
        f"passkeys are off: the issuer's host {host} is an IP address, and browsers refuse "
        "WebAuthn there; use a host name (http://localhost:PORT in development)")


def _server_engine_options(cfg, url: str) -> dict:
    """pool_pre_ping always (stale connections after a database restart are replaced), a
    connect timeout unless the URL sets one, so an unreachable database never hangs a worker,
    and no SQL parameter values in error messages, so none reach a log."""
    options = {"hide_parameters": True, **(cfg.get("SQLALCHEMY_ENGINE_OPTIONS") or {}),
               "pool_pre_ping": True}
    if "connect_timeout=" not in url:
        connect_args = dict(options.get("connect_args") or {})
        connect_args.setdefault("connect_timeout", int(cfg["DATABASE_CONNECT_TIMEOUT"]))
        options["connect_args"] = connect_args
    return options


def _instance_secret(app: Flask) -> str:
    """Read or create instance/secret_key (mode 0600), shared by every process using the folder."""
    path = Path(app.instance_path) / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def make_instance_folder(path: str) -> None:
    """Create the instance folder 0700: it holds the secret key, console mail and SQLite."""
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700, exist_ok=True)


def _sqlite_file(url: str) -> bool:
    database = make_url(url).database
    return bool(database) and database != ":memory:" and not database.startswith("file:")


def create_sqlite_file(url: str) -> None:
    """Create a SQLite database file 0600 before SQLite would (with the umask: usually
    world-readable); SQLite gives its -wal and -shm files the same mode. An existing file of
    ours that others may read is tightened."""
    parsed = make_url(url)
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:" \
            or path.startswith("file:") or not os.path.isdir(os.path.dirname(path) or "."):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        info = os.stat(path)
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            os.chmod(path, 0o600)


def check_config(app: Flask) -> None:
    """Fail fast on settings that would make the server unsafe or broken."""
    cfg = app.config
    secret = str(cfg["SECRET_KEY"])
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(f"AUTHSERVER_SECRET_KEY must be at least {MIN_SECRET_LENGTH} "
                          "characters")
    if secret in PLACEHOLDER_SECRETS or "change-me" in secret.lower():
        raise ConfigError("AUTHSERVER_SECRET_KEY is the placeholder from the example "
                          "configuration: set 64 random characters (see docs/production.md)")
    for name in ("ACCESS_TOKEN_TTL", "REFRESH_TOKEN_TTL", "RESET_CODE_TTL", "TEMP_PASSWORD_TTL"):
        if int(cfg[name]) <= 0:
            raise ConfigError(f"AUTHSERVER_{name} must be a positive number of seconds")
    if str(cfg["MFA_REQUIRED"]).lower() not in ("none", "admins", "all"):
        raise ConfigError("AUTHSERVER_MFA_REQUIRED must be none, admins or all")
    for name in LIMIT_SETTINGS:
        if not cfg.get(name):
            continue  # unset or empty: that limit is off
        try:
            parse_many(str(cfg[name]))
        except ValueError as exc:
            raise ConfigError(f"AUTHSERVER_{name}: not a rate limit ({exc})") from exc
    if cfg.get("PASSWORD_HASH_CONCURRENCY") is not None and \
            int(cfg["PASSWORD_HASH_CONCURRENCY"]) < 1:
        raise ConfigError("AUTHSERVER_PASSWORD_HASH_CONCURRENCY must be at least 1")
    reload_interval = float(cfg["KEYS_RELOAD_INTERVAL"])
    if not 0 < reload_interval < int(cfg["JWKS_CACHE_TTL"]):
        # Every node must publish a rotated key before any node signs with it.
        raise ConfigError("AUTHSERVER_KEYS_RELOAD_INTERVAL must be positive and below "
                          "AUTHSERVER_JWKS_CACHE_TTL")
    if not {cfg["ACCESS_TOKEN_ALG"], cfg["ID_TOKEN_ALG"]} <= {"RS256", "ES256"}:
        raise ConfigError("signing algorithms must be RS256 or ES256")
    check_webauthn(cfg)
    try:
        outbound.check_settings(cfg)
    except RuntimeError as exc:
        raise ConfigError(str(exc)) from exc


def check_webauthn(cfg) -> None:
    """The RP ID must be the issuer's host or a parent domain of it (WebAuthn section 5.1.3),
    otherwise every passkey ceremony would fail in the browser."""
    if cfg["PASSKEYS_DISABLED_REASON"]:
        return
    host = (urlsplit(cfg["ISSUER"]).hostname or "").lower()
    rp_id = cfg["WEBAUTHN_RP_ID"]
    if host != rp_id and not host.endswith("." + rp_id):
        raise ConfigError(
            f"AUTHSERVER_WEBAUTHN_RP_ID {rp_id!r} does not match the issuer's host {host!r}: it "
            "must be that host or a parent domain of it (behind a proxy, AUTHSERVER_ISSUER is "
            "the public URL users see)")
