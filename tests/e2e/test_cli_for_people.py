"""The `authserver` command line as a person meets it on a terminal: only options that work,
one readable line per result, log lines only with --verbose and never JSON inside JSON."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Sturdy-Lantern-Orbit-42"


@pytest.fixture
def cli(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AUTHSERVER_", "MAIL_", "FLASK_")) and k != "DATABASE_URL"}
    env.update(AUTHSERVER_INSTANCE_PATH=str(tmp_path / "instance"),
               AUTHSERVER_KEYS_DIR=str(tmp_path / "keys"),
               AUTHSERVER_SECRET_KEY="cli-test-secret-key-of-forty-characters-x",
               AUTHSERVER_PASSWORD_HASH_TIME_COST="1", AUTHSERVER_PASSWORD_HASH_MEMORY_COST="8192",
               AUTHSERVER_PASSWORD_HASH_PARALLELISM="1", PYTHONPATH=str(REPO))

    def run(*args):
        return subprocess.run([sys.executable, "-m", "authserver.cli", *args], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run("init").returncode == 0
    return run


def test_help_lists_only_options_and_commands_that_work(cli):
    out = cli("--help").stdout
    for absent in ("--env-file", "--app", "--debug", "limiter"):
        assert absent not in out
    for command in ("init", "run", "users", "clients", "keys", "mail", "purge"):
        assert f"  {command} " in out


def test_a_changing_command_prints_one_line_and_no_log_lines(cli):
    created = cli("users", "create", "bob", "--email", "bob@example.com", "--password", PASSWORD)
    assert created.returncode == 0, created.stderr
    disabled = cli("users", "disable", "bob")
    assert disabled.returncode == 0
    assert disabled.stdout.strip().count("\n") == 0 and "bob" in disabled.stdout
    assert disabled.stderr == ""


def test_verbose_shows_security_events_as_flat_json_lines(cli):
    cli("users", "create", "bob", "--email", "bob@example.com", "--password", PASSWORD)
    result = cli("--verbose", "users", "disable", "bob")
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    event = next(line for line in lines if line.get("event") == "user_disabled")
    assert event["logger"] == "authserver.audit"
    assert all(not str(v).lstrip().startswith("{") for v in event.values())
