"""The README's production recipe, run as written, over https in a real browser (issue 17).

nginx with the shipped site, gunicorn with deploy/gunicorn.conf.py, the settings of
deploy/authserver.env with local stand-ins (see httpskit.py), issuer https://auth.example.com
exactly as the env file says; Debian's Chromium reaches it through --host-resolver-rules.
Every form the SPEC names is submitted in the browser over https: with a Referrer-Policy that
drops the same-origin Referer, Flask-WTF's strict check refuses each of them with 400 "This
form has expired", which is how this suite fails on the old `no-referrer`.

Needs root and nginx (./scripts/test installs it); skips with a message otherwise.
"""
from __future__ import annotations

import os
import re
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pyotp
import pytest
import requests
from flask import request
from playwright.sync_api import expect, sync_playwright

from browser.conftest import (CHROMIUM, CHROMIUM_ARGS, SKIP_REASON, Mailbox, field,
                              load_demo_module, press, sign_in)
from e2e.smtp_sink import code_in
from httpskit import (DEPLOY, HOST, ISSUER, Deployment, GunicornConf, MailRelay, Nginx,
                      authserver, clear_redis, deployment_settings, make_certificate,
                      mapped_host, nginx_or_skip, nginx_site, read_env_file,
                      redis_url_or_memory, server_env)
from prodkit import (PASSWORD, _last_json_line, cli, done, free_port, pg_server_url,
                     pkce_pair, scratch_database)
from support import LiveServer

pytestmark = [pytest.mark.slow, pytest.mark.browser]

USERS = ("alice", "bob", "carol", "erin", "root")
NEW_PASSWORD = "a quiet harbour at dawn 7"


@pytest.fixture(scope="module")
def nginx_binary():
    """Skip before anything starts when this machine cannot run the recipe."""
    return nginx_or_skip()


@pytest.fixture(scope="module")
def database(nginx_binary, tmp_path_factory):
    """PostgreSQL (a scratch database) when DATABASE_URL points at it, else SQLite."""
    server = pg_server_url()
    if server:
        with scratch_database(server, prefix="authserver_https") as url:
            yield url
    else:
        yield "sqlite:///" + str(tmp_path_factory.mktemp("https-db") / "authserver.db")


@pytest.fixture(scope="module")
def smtp(nginx_binary, tmp_path_factory):
    relay = MailRelay(tmp_path_factory.mktemp("smtp"), free_port()).start()
    yield relay
    relay.stop()


@pytest.fixture(scope="module")
def mailbox(smtp):
    return Mailbox(smtp.inbox)


@pytest.fixture(scope="module")
def demo_port():
    return free_port()


@pytest.fixture(scope="module")
def recipe(nginx_binary, tmp_path_factory, database, smtp, demo_port):
    """The whole recipe running: `authserver init`, users and clients from the CLI (as an
    operator would), gunicorn, nginx; this process resolves auth.example.com to nginx."""
    root = tmp_path_factory.mktemp("https")
    cert, key = make_certificate(root / "tls", HOST)
    redis_url, prefix = redis_url_or_memory(), "authserver-https-" + secrets.token_hex(4)
    settings = deployment_settings(read_env_file(DEPLOY / "authserver.env"), root,
                                   database_url=database, mail=smtp,
                                   redis_url=redis_url, prefix=prefix)
    env = server_env(settings)
    done(cli(env, "init"))  # the unit's ExecStartPre, as a process
    https_port, http_port, upstream = free_port(), free_port(), free_port()
    gunicorn = GunicornConf(env, upstream, root).start()  # starts while the operator seeds
    nginx = Nginx(root / "nginx", nginx_site(http_port=http_port, https_port=https_port,
                                             upstream_port=upstream, cert=cert, key=key),
                  (https_port, http_port))
    try:
        clients = seed(env, f"http://127.0.0.1:{demo_port}")
        nginx.start()
        dep = Deployment(settings["AUTHSERVER_ISSUER"], cert, https_port, http_port, upstream,
                         env, root, nginx, gunicorn, clients)
        with mapped_host(HOST, {443: https_port, 80: http_port}), \
                pytest.MonkeyPatch.context() as mp:
            mp.setenv("REQUESTS_CA_BUNDLE", str(cert))  # for the relying app's Authlib client
            gunicorn.wait_ready()
            yield dep
    finally:
        nginx.stop()
        gunicorn.stop()
        clear_redis(redis_url, prefix)


def seed(env: dict, demo: str) -> dict:
    """Users and clients from the CLI; returns the clients' JSON by role."""
    for user in USERS:
        authserver(env, "users", "create", user, "--email", f"{user}@example.com", "--name",
                   user.title() + " Example", "--password", PASSWORD,
                   *(["--admin"] * (user == "root")))
    tool = authserver(env, "clients", "create", "Admin tool", "--grant-type",
                      "client_credentials", "--scope", "admin", "--json")
    app = authserver(env, "clients", "create", "Demo", "--redirect-uri", f"{demo}/callback",
                     "--post-logout-redirect-uri", f"{demo}/", "--third-party", "--json")
    return {"tool": _last_json_line(tool), "demo": _last_json_line(app)}


@pytest.fixture(scope="module")
def chromium(recipe):
    if not os.path.exists(CHROMIUM):
        pytest.skip(SKIP_REASON)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            *CHROMIUM_ARGS, f"--host-resolver-rules={recipe.resolver_rules}"])
        yield browser
        browser.close()


@pytest.fixture
def browse(chromium):
    """browse(**options) -> a new page in a fresh context (another person's browser). Every
    page of the issuer it loads must answer `Referrer-Policy: same-origin`."""
    contexts, unguarded = [], []

    def check(response):
        if (response.url.startswith(ISSUER + "/") and response.request.resource_type == "document"
                and response.headers.get("referrer-policy") != "same-origin"):
            unguarded.append(f"{response.request.method} {response.url.split('?')[0]}")

    def open_page(**options):
        ctx = chromium.new_context(ignore_https_errors=True, locale="en-GB", **options)
        ctx.set_default_timeout(15_000)
        ctx.on("response", check)
        contexts.append(ctx)
        return ctx.new_page()

    yield open_page
    for ctx in contexts:
        ctx.close()
    assert not unguarded, f"pages without Referrer-Policy: same-origin: {unguarded}"


def hosted(path: str) -> re.Pattern:
    return re.compile(re.escape(ISSUER + path) + r"(\?.*)?$")


def posted(page, act) -> None:
    """Do `act`, which submits a form to the issuer; the POST must not be refused as expired
    (the 400 every form got over https while the pages sent `Referrer-Policy: no-referrer`)."""
    with page.expect_response(lambda r: r.request.method == "POST"
                              and r.url.startswith(ISSUER + "/")) as answer:
        act()
    resp = answer.value
    assert resp.status != 400, (
        f"POST {resp.url.split('?')[0]} answered 400 over https (Referer sent: "
        f"{resp.request.headers.get('referer')!r}): {resp.text()[:300]}")


def submit(page, name: str) -> None:
    """Submit the form that holds field `name` (Enter in it), whatever its button says."""
    posted(page, lambda: field(page, name).press("Enter"))


def post_by(page, label: str) -> None:
    """Press the button `label` of a form that posts to the issuer."""
    posted(page, lambda: press(page, label))


def signs_in(page, username: str, password: str = PASSWORD) -> None:
    posted(page, lambda: sign_in(page, username, password))


def sign_in_to_account(page, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{ISSUER}/login")
    signs_in(page, username, password)
    page.wait_for_url(hosted("/account"))


# --- the recipe's https edge -------------------------------------------------------------------

def test_issuer_is_https_everywhere_behind_nginx(recipe):
    """http redirects to https; discovery names https://auth.example.com; HSTS; /metrics refused."""
    assert recipe.issuer == ISSUER  # authserver.env's issuer, unchanged
    plain = requests.get(f"http://{HOST}/login?x=1", allow_redirects=False, timeout=10)
    assert plain.status_code == 301 and plain.headers["Location"] == f"{ISSUER}/login?x=1"
    web = recipe.session()
    meta = web.get(f"{ISSUER}/.well-known/openid-configuration", timeout=10)
    assert meta.status_code == 200, meta.text
    body = meta.json()
    assert body["issuer"] == ISSUER
    urls = [v for v in body.values() if isinstance(v, str) and v.startswith("http")]
    assert urls and all(u.startswith(ISSUER + "/") for u in urls if u != ISSUER), urls
    login = web.get(f"{ISSUER}/login", timeout=10)
    assert login.headers["Strict-Transport-Security"].startswith("max-age=")
    assert login.headers["Referrer-Policy"] == "same-origin"
    cookie = login.headers["Set-Cookie"]
    assert cookie.startswith("__Host-authserver=") and "Secure" in cookie, cookie
    assert web.get(f"{ISSUER}/metrics", timeout=10).status_code == 403
    assert web.get(f"{ISSUER}/readyz", timeout=10).status_code == 200


def admin_api(recipe) -> requests.Session:
    """requests with a client_credentials token of scope admin, fetched at /token over https."""
    web, tool = recipe.session(), recipe.clients["tool"]
    resp = web.post(f"{ISSUER}/token", data={"grant_type": "client_credentials",
                                              "scope": "admin"},
                    auth=(tool["client_id"], tool["client_secret"]), timeout=10)
    assert resp.status_code == 200, resp.text
    web.headers["Authorization"] = "Bearer " + resp.json()["access_token"]
    return web


def test_token_and_admin_api_over_https(recipe, mailbox):
    """/token and the admin API through nginx, the certificate verified."""
    bad = recipe.session().post(f"{ISSUER}/token", data={"grant_type": "client_credentials"},
                                auth=(recipe.clients["tool"]["client_id"], "wrong"), timeout=10)
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    web = admin_api(recipe)
    created = web.post(f"{ISSUER}/api/admin/users", json={
        "username": "tim", "email": "tim@example.com", "name": "Tim Example"}, timeout=10)
    assert created.status_code == 201, created.text
    location = urljoin(created.url, created.headers["Location"])
    assert location.startswith(f"{ISSUER}/api/admin/users/")
    assert web.get(location, timeout=10).json()["username"] == "tim"
    found = web.get(f"{ISSUER}/api/admin/users", params={"q": "tim"}, timeout=10)
    assert [u["username"] for u in found.json()["items"]] == ["tim"]
    assert web.get(f"{ISSUER}/api/openapi.json", timeout=10).status_code == 200
    assert web.get(f"{ISSUER}/api/admin/users", headers={"Authorization": ""},
                   timeout=10).status_code == 401


# --- every form the SPEC names, in the browser, over https -------------------------------------

def test_sign_in_account_pages_second_step_and_sign_out(recipe, browse):
    page = browse()
    posts = []
    page.on("request", lambda r: posts.append(r) if r.method == "POST" else None)
    sign_in_to_account(page, "alice")
    expect(page.get_by_role("heading", level=1)).to_have_text("Alice Example")
    cookie = next(c for c in page.context.cookies(ISSUER) if c["name"] == "__Host-authserver")
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    # The form post carried its same-origin Referer (what the CSRF check needs) and Origin.
    login_post = next(r for r in posts if urlsplit(r.url).path == "/login")
    headers = login_post.all_headers()
    assert headers.get("referer", "").startswith(f"{ISSUER}/login"), headers
    assert headers.get("origin") == ISSUER, headers

    # The second step: enrol an authenticator app at /account/mfa.
    page.goto(f"{ISSUER}/account/mfa")
    uri = page.locator('a[href^="otpauth://"]').first.get_attribute("href")
    totp = pyotp.TOTP(parse_qs(urlsplit(uri).query)["secret"][0])
    step = int(time.time()) // 30
    field(page, "code").fill(totp.at(step * 30))
    submit(page, "code")

    # Sign out ("Sign out?" button), then sign in again with the password and a code.
    page.goto(f"{ISSUER}/logout")
    post_by(page, "Sign out")
    page.goto(f"{ISSUER}/account")
    page.wait_for_url(hosted("/login"))
    signs_in(page, "alice", PASSWORD)
    page.wait_for_url(hosted("/login/mfa"))
    later = max(int(time.time()) // 30, step + 1)  # a code is good once per time step
    field(page, "code").fill(totp.at(later * 30))
    submit(page, "code")
    page.wait_for_url(hosted("/account"))

    # The account page's sessions: sign out everywhere (a form post).
    posted(page, page.get_by_role("button", name=re.compile("sign out everywhere", re.I)).click)
    page.goto(f"{ISSUER}/account")
    page.wait_for_url(hosted("/login"))


def test_forgot_password_send_code_and_submit(recipe, browse, mailbox):
    page = browse()
    page.goto(f"{ISSUER}/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.wait_for_url(hosted("/forgot-password"))
    field(page, "username").fill("bob")
    post_by(page, "Send code")
    page.wait_for_url(hosted("/forgot-password/confirm"))
    expect(field(page, "username")).to_have_value("bob")
    code = code_in(mailbox.wait("bob@example.com", "verification code", timeout=15))
    field(page, "code").fill(code)
    field(page, "password").fill(NEW_PASSWORD)
    field(page, "password_confirm").fill(NEW_PASSWORD)
    post_by(page, "Submit")
    page.wait_for_url(hosted("/login"))
    expect(page.get_by_role("status")).to_have_text("Your password has been changed.")
    signs_in(page, "bob", NEW_PASSWORD)
    page.wait_for_url(hosted("/account"))


def test_temporary_password_forces_a_new_one(recipe, browse, mailbox):
    """A user created through the admin API gets a temporary password and must change it."""
    created = admin_api(recipe).post(f"{ISSUER}/api/admin/users", json={
        "username": "tess", "email": "tess@example.com", "name": "Tess Example"}, timeout=10)
    assert created.status_code == 201, created.text
    text = Mailbox.text(mailbox.wait("tess@example.com", "temporary password", timeout=15))
    temporary = re.search(r"temporary password:\s*\n\s*\n\s*(\S+)\s*\n", text).group(1)
    assert f"{ISSUER}/login" in text
    page = browse()
    page.goto(f"{ISSUER}/login")
    signs_in(page, "tess", temporary)
    page.wait_for_url(hosted("/change-password"))
    field(page, "password").fill(NEW_PASSWORD)
    field(page, "password_confirm").fill(NEW_PASSWORD)
    submit(page, "password_confirm")
    page.wait_for_url(hosted("/account"))


def test_users_module_reset_with_its_confirmation(recipe, browse, mailbox):
    page = browse()
    sign_in_to_account(page, "root")
    page.goto(f"{ISSUER}/admin/users")
    field(page, "q").fill("caro")
    field(page, "q").press("Enter")
    page.get_by_role("link", name="View profile", exact=True).click()
    page.wait_for_url(re.compile(re.escape(ISSUER) + r"/admin/users/\d+$"))
    asked = []
    page.on("dialog", lambda d: (asked.append(d.message), d.accept()))
    post_by(page, "Reset")
    assert asked and asked[0].startswith("Reset the password of carol"), asked
    expect(page.get_by_role("status")).to_contain_text("Password reset for carol")
    text = Mailbox.text(mailbox.wait("carol@example.com", "reset your password", timeout=15))
    assert f"{ISSUER}/forgot-password/confirm?username=carol" in text  # links name the issuer
    # Without script: the in-page confirmation and its OK.
    bare = browse(java_script_enabled=False)
    sign_in_to_account(bare, "root")
    bare.goto(page.url)
    post_by(bare, "Reset")
    post_by(bare, "OK")
    expect(bare.get_by_role("status")).to_contain_text("Password reset for carol")


# --- a relying app: code flow with Authlib's client, consent, /refresh, RP-initiated logout -----

@pytest.fixture
def relying_app(recipe, demo_port):
    """examples/demo_app (Authlib's Flask client) for the --third-party client, on http://127.0.0.1;
    it records the Referer of every request it gets."""
    info = recipe.clients["demo"]
    base = f"http://127.0.0.1:{demo_port}"
    app = load_demo_module().create_app({
        "issuer": ISSUER, "client_id": info["client_id"], "client_secret": info["client_secret"],
        "redirect_uri": f"{base}/callback", "base": base})
    referers: list[tuple[str, str | None]] = []

    @app.before_request
    def record():
        referers.append((request.path, request.headers.get("Referer")))

    server = LiveServer(app, demo_port).start()
    server.referers = referers
    yield server
    server.stop()


def test_relying_app_code_flow_consent_refresh_popup_and_logout(recipe, browse, relying_app):
    page = browse()
    page.clock.install()
    page.goto(relying_app.url + "/reports?year=2031")
    signs_in(page, "erin", PASSWORD)
    page.wait_for_url(hosted("/authorize"))  # consent: a --third-party client
    post_by(page, "Allow")
    page.wait_for_url(relying_app.url + "/reports?year=2031")
    expect(page.locator("#user-name")).to_have_text("Erin Example")
    first = page.locator("#token-id").inner_text()
    # The issuer's pages and redirects never told the app where the user came from.
    callbacks = [ref for path, ref in relying_app.referers if path == "/callback"]
    assert callbacks == [None], relying_app.referers

    # An hour later the pop-up asks to refresh; /refresh sends the browser straight back.
    page.clock.fast_forward("01:01:00")
    popup = page.get_by_role("dialog", name="Your session has expired")
    expect(popup).to_be_visible()
    page.clock.set_system_time(time.time())
    hops = []
    page.on("request", lambda r: hops.append(r.url) if r.is_navigation_request() else None)
    page.get_by_role("button", name="Refresh", exact=True).click()
    page.wait_for_url(relying_app.url + "/reports?year=2031")
    expect(page.locator("#token-id")).not_to_have_text(first)
    assert any(urlsplit(u).path == "/refresh" and u.startswith(ISSUER) for u in hops), hops
    assert not any(urlsplit(u).path == "/login" and u.startswith(ISSUER) for u in hops), hops

    # RP-initiated logout: id_token_hint and the registered post_logout_redirect_uri.
    hops.clear()
    page.get_by_role("link", name="Sign out").click()
    page.wait_for_url(hosted("/login"))  # back at the app, which sends a stranger to sign in
    assert any(urlsplit(u).path == "/logout" and u.startswith(ISSUER) for u in hops), hops
    assert relying_app.url + "/" in hops, hops
    page.goto(f"{ISSUER}/account")
    page.wait_for_url(hosted("/login"))


# --- Referrer-Policy: URLs never leave for another origin, same-origin posts keep the Referer ---

class _Recorder(BaseHTTPRequestHandler):
    seen: list = []  # noqa: RUF012 (each server gets its own subclass)

    def do_GET(self):
        self.seen.append((self.path, self.headers.get("Referer")))
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<h1>elsewhere</h1>")

    def log_message(self, *args):
        pass


@pytest.fixture
def elsewhere(recipe, tmp_path):
    """Another origin over https (https://127.0.0.1:<port>) that records each request's Referer."""
    cert, key = make_certificate(tmp_path / "other", "127.0.0.1")
    handler = type("Recorder", (_Recorder,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    server.url = f"https://127.0.0.1:{server.server_address[1]}"
    server.seen = handler.seen
    yield server
    server.shutdown()
    thread.join(5)
    server.server_close()


def _follow_link_elsewhere(page, target: str) -> None:
    """A link on the page the browser is on, to another origin, clicked like a user would."""
    page.evaluate("""url => { const a = document.createElement('a'); a.href = url;
        a.id = 'out'; a.textContent = 'elsewhere'; document.body.appendChild(a); }""", target)
    page.locator("#out").click()
    page.wait_for_url(target)


def _hosted_pages(recipe, demo_port: int, profile: str) -> dict[str, str]:
    """Every kind of hosted page, as root sees it; the consent page carries state and PKCE."""
    _, challenge = pkce_pair()
    authorize = "/authorize?" + urlencode({
        "response_type": "code", "client_id": recipe.clients["demo"]["client_id"],
        "redirect_uri": f"http://127.0.0.1:{demo_port}/callback", "scope": "openid profile",
        "state": "s-" + secrets.token_hex(4), "nonce": "n1", "code_challenge": challenge,
        "code_challenge_method": "S256"})
    return {"login": "/login?login_hint=root", "forgot": "/forgot-password",
            "confirm": "/forgot-password/confirm?username=root", "account": "/account",
            "mfa": "/account/mfa", "password": "/account/password", "users": "/admin/users?q=a",
            "profile": profile, "consent": authorize, "logout": "/logout",
            "error": "/authorize?client_id=nobody&response_type=code", "missing": "/nowhere"}


def test_no_hosted_page_sends_its_url_to_another_origin(recipe, browse, elsewhere, demo_port):
    page = browse()
    sign_in_to_account(page, "root")
    page.goto(f"{ISSUER}/admin/users?q=carol")
    profile = page.get_by_role("link", name="View profile", exact=True).first.get_attribute("href")
    pages = _hosted_pages(recipe, demo_port, urlsplit(profile).path)
    for name, path in pages.items():
        response = page.goto(ISSUER + path)
        assert response.headers.get("referrer-policy") == "same-origin", (name, response.url)
        _follow_link_elsewhere(page, f"{elsewhere.url}/from-{name}")
    followed = [(p, ref) for p, ref in elsewhere.seen if p.startswith("/from-")]
    assert [p for p, _ in followed] == [f"/from-{n}" for n in pages]
    leaked = [(p, ref) for p, ref in followed if ref]
    assert not leaked, f"hosted pages sent their URL to another origin: {leaked}"
