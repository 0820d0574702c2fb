"""Issue #10 finding 12 (the start-up part): the shipped placeholder secret and short secrets
are refused at start, the instance folder and the SQLite file are private, and codes reach
the console only when the console transport was chosen on purpose (or `run --demo`)."""
from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from authserver import create_app
from authserver.extensions import db
from authserver.mail import sender
from authserver.schema import init_schema
from reset_steps import ResetActions
from support import _empty_tables, free_port, make_user

ROOT = Path(__file__).resolve().parents[2]
AUTHSERVER = [sys.executable, "-c", "from authserver.cli import main; main()"]


def shipped_secret() -> str:
    text = (ROOT / "deploy" / "authserver.env").read_text()
    return re.search(r"^AUTHSERVER_SECRET_KEY=(.*)$", text, re.MULTILINE).group(1).strip()


def launch(tmp_path, argv: list[str], **env) -> subprocess.CompletedProcess:
    """`argv` in a fresh process with a fresh instance folder."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("AUTHSERVER_", "MAIL_", "GUNICORN_"))
             and k not in ("DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")}
    clean.update(AUTHSERVER_INSTANCE_PATH=str(tmp_path / "var" / "instance"),
                 AUTHSERVER_KEYS_DIR=str(tmp_path / "keys"), PYTHONPATH=str(ROOT), **env)
    return subprocess.run(argv, env=clean, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)


def start(tmp_path, **env) -> subprocess.CompletedProcess:
    """`authserver init` in a fresh process with a fresh instance folder."""
    return launch(tmp_path, AUTHSERVER + ["init"], **env)


@pytest.mark.slow
def test_the_start_refuses_the_placeholder_secret_of_the_example_configuration(tmp_path):
    result = start(tmp_path, AUTHSERVER_SECRET_KEY=shipped_secret())
    assert result.returncode != 0
    assert "placeholder" in result.stderr + result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("secret", ["x" * 31, "change-me-" + "x" * 40])
def test_the_start_refuses_a_short_or_placeholder_like_secret(tmp_path, secret):
    result = start(tmp_path, AUTHSERVER_SECRET_KEY=secret)
    assert result.returncode != 0
    assert "AUTHSERVER_SECRET_KEY" in result.stderr + result.stdout


SHORT = "AUTHSERVER_SECRET_KEY must be at least 32 characters"
PLACEHOLDER = ("AUTHSERVER_SECRET_KEY is the placeholder from the example configuration: set "
               "64 random characters (see docs/production.md)")
# Every way the server or its commands start: the command line, its help, Flask's own
# `flask run`, and gunicorn as deploy/authserver.service runs it.
ENTRY_POINTS = {
    "authserver init": AUTHSERVER + ["init"],
    "authserver users list": AUTHSERVER + ["users", "list"],
    "authserver (help)": AUTHSERVER,
    "flask run": [sys.executable, "-m", "flask", "--app", "authserver", "run", "--port", "0"],
    "gunicorn": [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
                 "wsgi:app"],
}


@pytest.mark.slow
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("secret, message", [("x" * 31, SHORT), (None, PLACEHOLDER)],
                         ids=["short", "placeholder"])
def test_a_refused_secret_is_one_clear_line_without_a_traceback(tmp_path, entry, secret,
                                                                message):
    result = launch(tmp_path, ENTRY_POINTS[entry],
                    AUTHSERVER_SECRET_KEY=secret or shipped_secret(),
                    GUNICORN_BIND="127.0.0.1:0", GUNICORN_WORKERS="1")
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if message in line]
    assert lines == [f"Error: {message}"], result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["authserver init", "authserver users list", "gunicorn"])
def test_a_database_that_cannot_be_reached_at_start_is_one_clear_line(tmp_path, entry):
    """Nothing listens at the database's address: the command, or gunicorn's worker, ends
    with one line naming the address (gunicorn's master stops: "App failed to load")."""
    port = free_port()  # free: a connection is refused at once
    result = launch(tmp_path, ENTRY_POINTS[entry],
                    AUTHSERVER_SECRET_KEY="startup-test-secret-0123456789abcdef-0123",
                    DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:{port}/x",
                    GUNICORN_BIND="127.0.0.1:0", GUNICORN_WORKERS="1")
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if "database could not" in line]
    assert lines, result.stderr
    assert all(line.startswith("Error: the database could not be used: ") and
               f"port {port}" in line for line in lines), lines


@pytest.mark.slow
def test_the_instance_folder_and_the_sqlite_file_are_private(tmp_path):
    result = start(tmp_path, AUTHSERVER_SECRET_KEY="s" * 32)
    assert result.returncode == 0, result.stderr
    instance = tmp_path / "var" / "instance"
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    database = instance / "authserver.db"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    for extra in instance.glob("authserver.db-*"):
        assert stat.S_IMODE(extra.stat().st_mode) & 0o077 == 0, extra


def test_an_existing_world_readable_sqlite_file_is_tightened(tmp_path, settings):
    path = tmp_path / "old.db"
    path.touch()
    path.chmod(0o644)
    create_app({**settings, "DATABASE_URL": f"sqlite:///{path}"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def console_output(settings, capsys, demo=False, **mail) -> tuple[str, str]:
    """Ask for a code with the console transport configured as given; return what the
    console printed and the code from the .eml file the transport wrote."""
    settings = {k: v for k, v in settings.items() if k != "MAIL_TRANSPORT"}
    app = create_app({**settings, **mail})
    if demo:  # what `authserver run --demo` does once the app exists
        app.config["MAIL_CONSOLE_SHOWS_CODES"] = True
    init_schema(app)
    try:
        make_user(app)
        assert ResetActions(app.test_client()).send_code("alice").status_code == 303
        capsys.readouterr()
        assert sender.deliver_due(app, app.extensions[sender.TRANSPORT_EXT]) == 1
        printed = capsys.readouterr().out
        eml = next(Path(app.instance_path, "mail").glob("*.eml")).read_text()
        code = re.search(r"^(\d{6})\r?$", eml, re.MULTILINE).group(1)
        return printed, code
    finally:
        with app.app_context():
            db.session.remove()
            _empty_tables()


def test_the_implicit_console_shows_the_message_without_the_code(settings, capsys):
    printed, code = console_output(settings, capsys)
    assert "To: alice@example.com" in printed and code not in printed


def test_an_explicit_console_transport_shows_the_code(settings, capsys):
    printed, code = console_output(settings, capsys, MAIL_TRANSPORT="console")
    assert code in printed


def test_the_demo_shows_the_code_on_the_implicit_console(settings, capsys):
    printed, code = console_output(settings, capsys, demo=True)
    assert code in printed
