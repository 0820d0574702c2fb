"""A bare Flask app with just the database and mail: the mail package needs nothing else."""
from __future__ import annotations

import socket
import sys
import types
from pathlib import Path

import pytest
from flask import Flask
from jinja2 import StrictUndefined

ROOT = Path(__file__).resolve().parents[3]


def _stub_packages() -> None:
    """Let the mail tests run while the rest of the app (create_app) does not import yet."""
    for name in ("authserver", "authserver.commands"):
        package = types.ModuleType(name)
        package.__path__ = [str(ROOT.joinpath(*name.split(".")))]
        sys.modules[name] = package


try:
    import authserver.commands  # noqa: F401
except ImportError:
    _stub_packages()

from authserver.config import Defaults  # noqa: E402
from authserver.extensions import db, mail  # noqa: E402
from authserver.mail import sender  # noqa: E402
from authserver.mail.models import OutboxMessage  # noqa: E402


class FakeUser:
    """What the mail builders read from a user."""

    def __init__(self, username="alice", email="alice@example.com", name="Alice Example"):
        self.username, self.email, self.name = username, email, name


def build_app(tmp_path: Path, index: int, overrides: dict) -> Flask:
    """Defaults from config.py, test settings, then `overrides`; the outbox table on SQLite."""
    app = Flask("mail_tests", instance_path=str(tmp_path / f"instance{index}"),
                template_folder=str(ROOT / "templates"))
    app.config.from_object(Defaults)
    app.config.update(
        TESTING=True, SECRET_KEY="test-secret-key-0123456789abcdefghij",
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'mail.db'}",
        SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"timeout": 30}},
        MAIL_TRANSPORT="memory", MAIL_DEFAULT_SENDER="Authserver <no-reply@example.com>",
        MAIL_SENDER_THREAD=False, ORGANISATION_NAME="Example Corp",
        ADMIN_CONTACT="the IT help desk",
    )
    app.config.update(overrides)
    app.jinja_env.undefined = StrictUndefined
    db.init_app(app)
    mail.init_app(app)
    with app.app_context():
        db.metadata.create_all(db.engine, tables=[OutboxMessage.__table__])
    sender.init_app(app)
    return app


@pytest.fixture
def make_mail_app(tmp_path):
    """Build independent apps on one SQLite file (like processes sharing one database)."""
    apps = []

    def make(**overrides) -> Flask:
        apps.append(build_app(tmp_path, len(apps), overrides))
        return apps[-1]

    yield make
    for app in apps:
        sender.stop_sender(app)
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def mail_app(make_mail_app):
    return make_mail_app()


@pytest.fixture
def user():
    return FakeUser()


@pytest.fixture
def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (until a test starts something)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
