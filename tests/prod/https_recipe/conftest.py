"""Fixtures of the production-shaped https suite (issue 17): the README's production recipe
running once per session, as written: nginx with the shipped site, gunicorn with
deploy/gunicorn.conf.py, the settings of deploy/authserver.env with local stand-ins (see
tests/prod/httpskit.py), issuer https://auth.example.com exactly as the env file says, and
Debian's Chromium reaching it through --host-resolver-rules.

Needs root and nginx (./scripts/test installs it); skips with a message otherwise. How to run
it and what is swapped: docs/production.md.
"""
from __future__ import annotations

import os
import secrets

import pytest

from browser.conftest import CHROMIUM, CHROMIUM_ARGS, SKIP_REASON, Mailbox
from httpskit import (DEPLOY, HOST, ISSUER, Deployment, GunicornConf, MailRelay, Nginx,
                      authserver, clear_redis, deployment_settings, make_certificate,
                      mapped_host, nginx_or_skip, nginx_site, read_env_file,
                      redis_url_or_memory, server_env)
from prodkit import (PASSWORD, _last_json_line, cli, done, free_port, pg_server_url,
                     scratch_database)

USERS = ("alice", "bob", "carol", "erin", "root")


@pytest.fixture(scope="package")
def nginx_binary():
    """Skip before anything starts when this machine cannot run the recipe."""
    return nginx_or_skip()


@pytest.fixture(scope="package")
def database(nginx_binary, tmp_path_factory):
    """PostgreSQL (a scratch database) when DATABASE_URL points at it, else SQLite."""
    server = pg_server_url()
    if server:
        with scratch_database(server, prefix="authserver_https") as url:
            yield url
    else:
        yield "sqlite:///" + str(tmp_path_factory.mktemp("https-db") / "authserver.db")


@pytest.fixture(scope="package")
def smtp(nginx_binary, tmp_path_factory):
    relay = MailRelay(tmp_path_factory.mktemp("smtp"), free_port()).start()
    yield relay
    relay.stop()


@pytest.fixture(scope="package")
def mailbox(smtp):
    return Mailbox(smtp.inbox)


@pytest.fixture(scope="package")
def demo_port():
    return free_port()


@pytest.fixture(scope="package")
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
        gunicorn.wait_ready()
        yield Deployment(settings["AUTHSERVER_ISSUER"], cert, https_port, http_port, upstream,
                         env, root, nginx, gunicorn, clients)
    finally:
        nginx.stop()
        gunicorn.stop()
        clear_redis(redis_url, prefix)


@pytest.fixture(autouse=True)
def reach_the_issuer(recipe, monkeypatch):
    """During each test, this process reaches https://auth.example.com at nginx (as the
    browser does) and trusts the test certificate there (the relying app's Authlib client)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(recipe.cert))
    with mapped_host(HOST, {443: recipe.https_port, 80: recipe.http_port}):
        yield


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


@pytest.fixture(scope="package")
def chromium(recipe, playwright_driver):
    if not os.path.exists(CHROMIUM):
        pytest.skip(SKIP_REASON)
    browser = playwright_driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
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

