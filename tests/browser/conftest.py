"""Browser fixtures: Playwright driving Debian's chromium against live servers.

Reusable by every browser test (stories 1 to 6):

- `browser` (session scope): headless /usr/bin/chromium (or $AUTHSERVER_CHROMIUM); the tests
  skip, saying how to get it, when it is missing. Playwright never downloads a browser here.
- `context`, `page`: a fresh context per test (10 s default timeouts); a failing test leaves
  a screenshot of each open page under test-artifacts/screenshots/<test>/.
- `issuer`: Authserver on a free port with ISSUER set to its URL. Settings come from the
  `settings` fixture plus `@pytest.mark.issuer_settings(ACCESS_TOKEN_TTL=3, ...)`;
  `ISSUER_HOST="localhost"` there gives an issuer on a host name (passkeys need one).
- `demo_app`: examples/demo_app registered as a client of `issuer`, on its own free port.
- `alice`: a user name and password that sign in.
- `screenshot`: `screenshot(page, "name")` saves test-artifacts/screenshots/<test>/NN-name.png.
- `redirects`: every redirect the page's browser follows (`redirects.hops`, `.from_origin()`).
- `cookie_blocking_context`: `cookie_blocking_context(origin)` opens a context whose browser
  blocks every cookie of that origin (chromium's per-site setting, as a user would set it).
- `sign_in(page, username, password)`: fill in and submit the hosted login page.
- `field(page, name)`, `press(page, label)`, `at(origin, path)`: a visible form field by its
  name, a button by its visible text, and a URL pattern for `page.wait_for_url`.
- `mailbox`: `issuer` sends real mail, at once, to an aiosmtpd sink (a running sender thread);
  `mailbox.wait(to, subject)` returns the message. Request it before `issuer`/`demo_app`.
- `new_context(**options)`: another person's browser (an administrator, a second device).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from authserver import create_app
from authserver.config import PROJECT_ROOT
from authserver.extensions import db
from authserver.mail.sender import start_sender, stop_sender
from e2e.smtp_sink import SmtpSink, parts, use_smtp
from support import PASSWORD, LiveServer, _empty_tables, free_port, make_client, make_user

CHROMIUM = os.environ.get("AUTHSERVER_CHROMIUM") or "/usr/bin/chromium"  # Debian's package
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SKIP_REASON = "install Debian's chromium (apt-get install chromium) to run browser tests"
TIMEOUT_MS = 10_000
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR") or PROJECT_ROOT / "test-artifacts")
DEMO_APP = PROJECT_ROOT / "examples" / "demo_app" / "app.py"
REDIRECT_STATUSES = (301, 302, 303, 307, 308)


def pytest_configure(config):
    config.addinivalue_line("markers", "issuer_settings(**settings): settings for `issuer`")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
    if report.when == "call" and report.failed:
        report.sections.extend(_pages_said(item))


def _pages_said(item) -> list[tuple[str, str]]:
    """What the test's open pages show, for the failure report: CI keeps the log, not the
    screenshots."""
    page = item.funcargs.get("page")
    sections = []
    for i, pg in enumerate(page.context.pages if page is not None else []):
        try:
            text = " ".join(pg.locator("body").inner_text(timeout=2000).split())
        except Exception as exc:  # noqa: BLE001 (a closed page must not hide the real failure)
            text = f"(not readable: {exc.__class__.__name__})"
        sections.append((f"page {i} at failure", f"{pg.url}\n{text[:800]}"))
    return sections


# --- the browser -------------------------------------------------------------------------------

# `playwright_driver` (one sync Playwright for the whole run: a second one in the same thread
# refuses to start) lives in tests/conftest.py, shared with tests/prod/https_recipe.


@pytest.fixture(scope="session")
def browser(playwright_driver):
    browser = playwright_driver.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=CHROMIUM_ARGS)
    yield browser
    browser.close()


def _setup(context):
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    return context


@pytest.fixture
def context(browser, request):
    ctx = _setup(browser.new_context(locale="en-GB", viewport={"width": 1100, "height": 760}))
    yield ctx
    _shoot_on_failure(request, ctx)
    ctx.close()


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture
def cookie_blocking_context(playwright_driver, tmp_path, request):
    """Open contexts whose chromium blocks all cookies of one origin (scheme://host:port)."""
    opened = []

    def open_context(origin: str):
        profile = tmp_path / f"profile-{len(opened)}"
        (profile / "Default").mkdir(parents=True)
        prefs = {"profile": {"content_settings": {"exceptions": {"cookies": {
            f"{origin},*": {"setting": 2}}}}}}
        (profile / "Default" / "Preferences").write_text(json.dumps(prefs))
        ctx = _setup(playwright_driver.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            locale="en-GB", viewport={"width": 1100, "height": 760}))
        opened.append(ctx)
        return ctx

    yield open_context
    for ctx in opened:
        _shoot_on_failure(request, ctx)
        ctx.close()


def _shoot_on_failure(request, context) -> None:
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.failed:
        return
    folder = screenshot_dir(request.node.name)
    for i, pg in enumerate(context.pages):
        try:
            pg.screenshot(path=str(folder / f"failure-{i}.png"), full_page=True)
        except Exception:  # noqa: BLE001 (a closed page must not hide the real failure)
            pass


# --- screenshots and redirects -----------------------------------------------------------------

def screenshot_dir(test_name: str) -> Path:
    folder = ARTIFACTS / "screenshots" / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)[:120]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def screenshot(request):
    """shot(page, "name") -> test-artifacts/screenshots/<test>/NN-name.png (numbered in order)."""
    folder = screenshot_dir(request.node.name)
    for old in folder.glob("*.png"):
        old.unlink()
    taken = []

    def shot(page, name: str) -> Path:
        path = folder / f"{len(taken) + 1:02d}-{re.sub(r'[^A-Za-z0-9_-]+', '-', name)}.png"
        page.screenshot(path=str(path))
        taken.append(path)
        return path

    return shot


@dataclass
class Hop:
    url: str
    status: int
    location: str


@dataclass
class RedirectLog:
    """Every 3xx response the browser followed, in order, and every URL it requested."""

    hops: list[Hop] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)

    def attach(self, page) -> RedirectLog:
        page.on("response", self._on_response)
        page.on("request", lambda req: self.requested.append(req.url)
                if req.is_navigation_request() else None)
        return self

    def _on_response(self, response) -> None:
        if response.status in REDIRECT_STATUSES:  # not 304, which is a cache answer
            self.hops.append(Hop(response.url, response.status,
                                 response.headers.get("location", "")))

    def clear(self) -> None:
        self.hops.clear()
        self.requested.clear()

    def from_origin(self, origin: str) -> list[Hop]:
        return [h for h in self.hops if same_origin(h.url, origin)]

    def visited(self, origin: str, path: str) -> bool:
        return any(same_origin(u, origin) and urlsplit(u).path == path for u in self.requested)


def same_origin(url: str, origin: str) -> bool:
    a, b = urlsplit(url), urlsplit(origin)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


@pytest.fixture
def redirects(page):
    return RedirectLog().attach(page)


def save_measure(name: str, data: dict) -> Path:
    """Keep a number a test measured (redirect counts...) under test-artifacts/measures/."""
    folder = ARTIFACTS / "measures"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
    return path


# --- servers -----------------------------------------------------------------------------------

@pytest.fixture
def issuer(settings, request):
    """Authserver on a free port; `@pytest.mark.issuer_settings(...)` adds settings."""
    marker = request.node.get_closest_marker("issuer_settings")
    if marker:
        settings.update(marker.kwargs)
    port = free_port()
    host = settings.pop("ISSUER_HOST", "127.0.0.1")  # "localhost" for passkeys (WebAuthn)
    settings["ISSUER"] = f"http://{host}:{port}"
    app = create_app(settings)
    server = LiveServer(app, port).start()
    server.url = settings["ISSUER"]
    yield server
    server.stop()
    with app.app_context():
        db.session.remove()
        _empty_tables()


@dataclass
class DemoApp:
    url: str
    app: object
    client_id: str
    client_secret: str


def load_demo_module():
    spec = importlib.util.spec_from_file_location("authserver_demo_app", DEMO_APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def demo_app(issuer):
    """examples/demo_app, registered at `issuer` and served on its own port."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    client_id, secret = make_client(issuer.app, "Demo app", redirect_uris=[f"{base}/callback"],
                                    post_logout_redirect_uris=[f"{base}/"])
    app = load_demo_module().create_app({
        "issuer": issuer.url, "client_id": client_id, "client_secret": secret,
        "redirect_uri": f"{base}/callback", "base": base})
    server = LiveServer(app, port).start()
    yield DemoApp(base, app, client_id, secret)
    server.stop()


@pytest.fixture
def alice(issuer) -> tuple[str, str]:
    make_user(issuer.app, "alice", name="Alice Example")
    return "alice", PASSWORD


def sign_in(page, username: str, password: str) -> None:
    """Fill in the hosted login page the browser is on and submit it."""
    page.wait_for_url(re.compile(r".*/login(\?.*)?$"))
    page.get_by_label(re.compile("user ?name", re.I)).fill(username)
    page.get_by_label(re.compile("password", re.I)).fill(password)
    page.get_by_role("button", name=re.compile(r"^sign in$", re.I)).click()


def field(page, name: str):
    """The visible input called `name` (a hidden twin, as in the Resend code form, is skipped)."""
    return page.locator(f'input[name="{name}"]:visible')


def press(page, label: str) -> None:
    """Click the button whose visible text is exactly `label`."""
    page.get_by_role("button", name=label, exact=True).click()


def at(origin: str, path: str) -> re.Pattern:
    """`origin` + `path`, with or without a query string."""
    return re.compile(re.escape(origin + path) + r"(\?.*)?$")


def copy_to_docs(path: Path, name: str) -> None:
    """With AUTHSERVER_DOCS_SCREENSHOTS=1, also copy a screenshot to docs/img/<name>."""
    if os.environ.get("AUTHSERVER_DOCS_SCREENSHOTS") == "1":
        target = PROJECT_ROOT / "docs" / "img" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


# --- another browser, and mail --------------------------------------------------------------------

@pytest.fixture
def new_context(browser, request):
    """new_context(**options) -> a context like `context` (another person's browser)."""
    opened = []

    def open_context(**options):
        options = {"locale": "en-GB", "viewport": {"width": 1100, "height": 760}, **options}
        opened.append(_setup(browser.new_context(**options)))
        return opened[-1]

    yield open_context
    report = getattr(request.node, "rep_call", None)
    for n, ctx in enumerate(opened):
        if report is not None and report.failed:
            for i, pg in enumerate(ctx.pages):
                pg.screenshot(path=str(screenshot_dir(request.node.name)
                                       / f"failure-other-{n}-{i}.png"), full_page=True)
        ctx.close()


class Mailbox:
    """What reached the SMTP sink, read like the user's mail client would."""

    def __init__(self, inbox) -> None:
        self.inbox = inbox

    def wait(self, to: str, subject: str, count: int = 1, timeout: float = 10.0):
        """The `count`-th message to `to` whose subject contains `subject`, once it arrived."""
        deadline = time.monotonic() + timeout
        while len(found := self.inbox.to(to, subject)) < count:
            assert time.monotonic() < deadline, (
                f"no mail #{count} to {to} about {subject!r} within {timeout} s; got "
                f"{[(m['X-Envelope-To'], str(m['Subject'])) for m in self.inbox.messages]}")
            time.sleep(0.05)
        return found[count - 1]

    @staticmethod
    def text(message) -> str:
        return parts(message)["text/plain"]

    @staticmethod
    def html(message) -> str:
        return parts(message)["text/html"]


@pytest.fixture
def smtp_sink(settings):
    """aiosmtpd on 127.0.0.1 at a free port, and `settings` pointed at it."""
    sink = SmtpSink(free_port()).start()
    use_smtp(settings, sink.port)
    yield sink
    sink.stop()


@pytest.fixture
def mailbox(smtp_sink, issuer):
    """`issuer` with its mail sender running, so mail reaches the SMTP sink at once."""
    assert issuer.app.config["MAIL_PORT"] == smtp_sink.port, (
        "request `mailbox` before `issuer`, `demo_app` or `alice`")
    start_sender(issuer.app)
    yield Mailbox(smtp_sink.inbox)
    stop_sender(issuer.app)
