"""The README's "Integrating an app", as written: the Python snippet is taken from README.md and
saved under the name the README gives, the app is registered with the README's `clients
create` line and started with its run command, against a live Authserver started the way
./scripts/demo starts it (`authserver run --demo`); then a person signs in through HTTP as the
demo's alice and the app's `/` names her.

Only what a reader must change is changed: the placeholders of the run command get the values
`clients create` printed, ISSUER (which the README names) points at this test's server, and the
README's app port is replaced by a free one when it is taken. Every process the test starts is
stopped by its PID."""
from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from support import csrf_from, free_port

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SECTION = "Integrating an app"


# --- reading the README ------------------------------------------------------------------------

def readme_section(title: str) -> str:
    text = README.read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no section '## {title}'"
    return match.group(1)


def fences(section: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", section, re.M | re.S)


def commands(block: str) -> list[list[str]]:
    """The shell commands of a block: continuation lines joined, comments dropped."""
    joined = block.replace("\\\n", " ")
    return [words for line in joined.splitlines() if (words := shlex.split(line, comments=True))]


class Integration:
    """The snippet, the file name, the registration and the run command, as the README has them."""

    def __init__(self):
        section = readme_section(SECTION)
        python = fences(section, "python")
        assert len(python) == 1, "the section should hold exactly one Python snippet"
        self.snippet = python[0]
        shell = [c for block in fences(section, "sh") for c in commands(block)]
        self.register = next(c for c in shell if c[:3] == ["authserver", "clients", "create"])
        self.run = next(c for c in shell if "flask" in c and "--app" in c)
        flask_at = self.run.index("flask")
        self.env = dict(word.split("=", 1) for word in self.run[:flask_at])
        self.argv = self.run[flask_at:]
        self.module = self.argv[self.argv.index("--app") + 1]
        self.port = int(self.argv[self.argv.index("--port") + 1])
        self.section = section


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def two_free_ports() -> int:
    """A port P with P + 1 also free: `run --demo` serves the demo app on P + 1."""
    for _ in range(50):
        port = free_port()
        if port_is_free(port + 1):
            return port
    raise RuntimeError("no two consecutive free ports")


# --- processes ---------------------------------------------------------------------------------

def clean_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AUTHSERVER_", "MAIL_", "FLASK_", "DEMO_"))
           and k not in ("DATABASE_URL", "ISSUER", "CLIENT_ID", "CLIENT_SECRET", "PORT")}
    env.update(AUTHSERVER_INSTANCE_PATH=str(tmp_path / "instance"),
               AUTHSERVER_KEYS_DIR=str(tmp_path / "keys"),
               AUTHSERVER_PASSWORD_HASH_TIME_COST="1", AUTHSERVER_PASSWORD_HASH_MEMORY_COST="8192",
               AUTHSERVER_PASSWORD_HASH_PARALLELISM="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               PYTHONUNBUFFERED="1")
    return env


def python_command(argv: list[str]) -> list[str]:
    """`authserver ...` and `flask ...` through this interpreter: the checkout's .venv/bin
    entry points, without depending on where the venv lives."""
    modules = {"authserver": "authserver.cli", "flask": "flask"}
    assert argv[0] in modules, argv
    return [sys.executable, "-m", modules[argv[0]], *argv[1:]]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


def wait_for(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args} exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {timeout} s:\n{log.read_text()}")


@pytest.fixture
def processes():
    started: list[subprocess.Popen] = []
    yield started
    for proc in reversed(started):
        stop(proc)


# --- the test ----------------------------------------------------------------------------------

def test_the_readme_names_what_a_reader_needs():
    readme = Integration()
    assert f"Save this as `{readme.module}.py`" in readme.section
    assert set(readme.env) == {"CLIENT_ID", "CLIENT_SECRET"}
    assert f"http://127.0.0.1:{readme.port}/callback" in readme.register
    assert f"**http://127.0.0.1:{readme.port}/**" in readme.section  # the URL to open
    assert "ISSUER=" in readme.section and 'os.environ.get("ISSUER"' in readme.snippet
    assert re.search(r"^pip install .*\bflask\b.*\bauthlib\b.*\brequests\b", "\n".join(
        fences(readme.section, "sh")), re.M)
    assert "@app.route(\"/\")" in readme.snippet  # the page the callback redirects to


def test_the_readme_snippet_signs_in_as_written(tmp_path, processes):
    readme = Integration()
    env = clean_env(tmp_path)

    # The issuer, as ./scripts/demo runs it (its output names alice's password).
    port = two_free_ports()
    issuer = f"http://127.0.0.1:{port}"
    server_log = tmp_path / "server.log"
    with open(server_log, "w") as out:
        processes.append(subprocess.Popen(
            python_command(["authserver", "run", "--demo", "--port", str(port)]),
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT))
    wait_for(f"{issuer}/.well-known/openid-configuration", processes[-1], server_log)
    password = re.search(r"user name: alice\s+password: (\S+)", server_log.read_text()).group(1)

    # The README's app port, or a free one when something already listens there.
    app_port = readme.port if port_is_free(readme.port) else free_port()

    def on_our_port(words: list[str]) -> list[str]:
        return [str(app_port) if w == str(readme.port) else
                w.replace(f"127.0.0.1:{readme.port}", f"127.0.0.1:{app_port}") for w in words]

    registered = subprocess.run(python_command(on_our_port(readme.register)), env=env, cwd=REPO,
                                capture_output=True, text=True, timeout=60)
    assert registered.returncode == 0, registered.stderr
    client_id = re.search(r"client_id\W+([\w.~-]+)", registered.stdout).group(1)
    client_secret = re.search(r"client_secret\W+([\w.~-]+)", registered.stdout).group(1)

    # The snippet under the README's file name, run with the README's command.
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / f"{readme.module}.py").write_text(readme.snippet)
    values = {"<client_id>": client_id, "<client_secret>": client_secret}
    app_env = {k: v for k, v in env.items() if not k.startswith("AUTHSERVER_")}
    app_env.update({name: values[placeholder] for name, placeholder in readme.env.items()},
                   ISSUER=issuer)
    app_log = tmp_path / "app.log"
    with open(app_log, "w") as out:
        processes.append(subprocess.Popen(python_command(on_our_port(readme.argv)), env=app_env,
                                          cwd=app_dir, stdout=out, stderr=subprocess.STDOUT))
    app = f"http://127.0.0.1:{app_port}"
    wait_for(f"{app}/", processes[-1], app_log)

    browser = requests.Session()
    first = browser.get(f"{app}/", timeout=10)
    assert first.status_code == 200 and 'href="/login"' in first.text

    # Sign in: the app's login redirect, the issuer's form with its CSRF token, back to the app.
    form = browser.get(f"{app}/login", timeout=10)
    assert form.status_code == 200 and form.url.startswith(f"{issuer}/login"), form.url
    assert all(r.status_code < 500 for r in form.history)
    done = browser.post(f"{issuer}/login", timeout=10, data={
        "csrf_token": csrf_from(form.text), "username": "alice", "password": password})
    assert all(r.status_code < 500 for r in done.history)
    assert done.status_code == 200, (done.url, done.text[:500], app_log.read_text())
    assert done.url == f"{app}/"
    assert "Signed in as Alice Example (alice@example.com)" in done.text

    # Sign out: through the issuer's RP-initiated logout and back to the app, signed out of both.
    out = browser.get(f"{app}/logout", timeout=10)
    assert out.status_code == 200 and out.url == f"{app}/" and 'href="/login"' in out.text
    account = browser.get(f"{issuer}/account", timeout=10, allow_redirects=False)
    assert account.status_code in (302, 303) and "/login" in account.headers["Location"]
