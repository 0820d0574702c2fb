#!/usr/bin/env python3
"""Take the documentation's screenshots from a live demo: the sign-in page, the Users module and
the session-expired pop-up, written to docs/img/ (or --out).

    .venv/bin/python scripts/screenshots.py [--out docs/img] [--chromium /usr/bin/chromium]

It starts its own `authserver run --demo` on free ports, with a temporary instance folder and
30-second access tokens (so the pop-up shows), drives Debian's chromium through Playwright,
and stops the server (by its PID) and removes the folder when done, whatever happens.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKEN_TTL = 30  # seconds: the demo app shows the pop-up when its access token expires
VIEWPORT = {"width": 1100, "height": 660}


def free_port_pair() -> int:
    """A port P with P + 1 free too: `run --demo` serves the demo app on P + 1."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise SystemExit("no two consecutive free ports")


def start_demo(folder: Path, port: int) -> tuple[subprocess.Popen, Path]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AUTHSERVER_", "MAIL_", "DEMO_")) and k != "DATABASE_URL"}
    env.update(AUTHSERVER_INSTANCE_PATH=str(folder / "instance"),
               AUTHSERVER_KEYS_DIR=str(folder / "keys"),
               AUTHSERVER_ACCESS_TOKEN_TTL=str(TOKEN_TTL), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    log = folder / "demo.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "authserver.cli", "run", "--demo",
                                 "--port", str(port)], env=env, cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT)
    issuer = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the demo server exited:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration", timeout=2):
                return proc, log
        except OSError:
            time.sleep(0.3)
    stop(proc)
    raise SystemExit(f"the demo server did not answer:\n{log.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


def password_of(log: Path, user: str) -> str:
    return re.search(rf"user name: {user}\s+password: (\S+)", log.read_text()).group(1)


def sign_in(page, username: str, password: str) -> None:
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_load_state()


def take(out: Path, chromium: str, issuer: str, app: str, log: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            alice = browser.new_context(viewport=VIEWPORT, locale="en-GB").new_page()
            alice.goto(f"{app}/")  # the demo app sends the browser to the issuer's sign-in page
            alice.wait_for_url(re.compile(re.escape(issuer) + r"/login"))
            alice.screenshot(path=str(out / "signin-page.png"))
            print("signin-page.png")

            sign_in(alice, "alice", password_of(log, "alice"))
            alice.wait_for_url(f"{app}/")
            dialog = alice.get_by_role("dialog")
            dialog.wait_for(state="visible", timeout=(TOKEN_TTL + 30) * 1000)
            alice.screenshot(path=str(out / "session-expired-popup.png"))
            print("session-expired-popup.png")

            admin = browser.new_context(viewport=VIEWPORT, locale="en-GB").new_page()
            admin.goto(f"{issuer}/login")
            sign_in(admin, "admin", password_of(log, "admin"))
            admin.goto(f"{issuer}/admin/users")
            admin.get_by_role("table").wait_for()
            admin.screenshot(path=str(out / "users-module.png"))
            print("users-module.png")
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"))
    parser.add_argument("--chromium", default=os.environ.get("AUTHSERVER_CHROMIUM")
                        or "/usr/bin/chromium")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="authserver-screenshots-"))
    port = free_port_pair()
    proc = None
    try:
        proc, log = start_demo(folder, port)
        take(out, args.chromium, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}", log)
    finally:
        if proc is not None:
            stop(proc)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
