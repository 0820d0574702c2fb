"""Outbound HTTPS through outbound.http_session: verified against the system CAs, or the
private CA in CA_BUNDLE (AUTHSERVER_CA_BUNDLE), with a timeout on every request; and the
CA file settings, read from the environment and checked at start-up (SPEC §5)."""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from flask import Flask

from authserver import outbound
from authserver.config import check_config, load_config
from authserver.observability import REGISTRY
from tlskit import TestCA, self_signed, server_context


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/to-plain-http":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"hello over verified TLS"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def https_server():
    """Start an HTTPS server on 127.0.0.1 presenting a given certificate; return its URL."""
    running = []

    def start(cert) -> str:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
        httpd.socket = server_context(*cert).wrap_socket(httpd.socket, server_side=True)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        running.append((httpd, thread))
        return f"https://localhost:{httpd.server_address[1]}/"

    yield start
    for httpd, thread in running:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def ca(tmp_path):
    return TestCA(tmp_path)


def rejected_count() -> float:
    return REGISTRY.get_sample_value("authserver_outbound_tls_rejected_total",
                                     {"protocol": "https"}) or 0.0


def test_a_private_ca_certificate_is_refused_without_ca_bundle(https_server, ca, caplog):
    url = https_server(ca.issue("localhost"))
    before = rejected_count()
    with pytest.raises(requests.exceptions.SSLError):
        outbound.http_session({}).get(url)
    assert rejected_count() == before + 1
    port = url.rstrip("/").rpartition(":")[2]
    assert ("outbound HTTPS refused: certificate verify failed: unable to get local issuer "
            f"certificate for localhost:{port}") in caplog.messages


def test_a_private_ca_certificate_is_accepted_with_ca_bundle(https_server, ca):
    url = https_server(ca.issue("localhost"))
    response = outbound.http_session({"CA_BUNDLE": str(ca.cafile)}).get(url)
    assert response.status_code == 200 and response.text == "hello over verified TLS"


def test_ca_bundle_does_not_vouch_for_another_host_name_or_a_self_signed_certificate(
        https_server, ca, tmp_path):
    session = outbound.http_session({"CA_BUNDLE": str(ca.cafile)})
    for cert in (ca.issue("api.example.net"), self_signed(tmp_path, "localhost")):
        with pytest.raises(requests.exceptions.SSLError):
            session.get(https_server(cert))


def test_the_environment_cannot_loosen_or_replace_the_trust_store(https_server, ca,
                                                                   monkeypatch):
    """requests would honour REQUESTS_CA_BUNDLE and proxies; the one setting is CA_BUNDLE."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.cafile))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(ca.cafile))
    url = https_server(ca.issue("localhost"))
    with pytest.raises(requests.exceptions.SSLError):
        outbound.http_session({}).get(url)


def test_a_redirect_from_https_to_plain_http_is_not_followed(https_server, ca):
    url = https_server(ca.issue("localhost"))
    session = outbound.http_session({"CA_BUNDLE": str(ca.cafile)})
    with pytest.raises(outbound.DowngradeRefused, match="to plain HTTP"):
        session.get(url + "to-plain-http")


def test_every_request_has_the_outbound_timeout():
    with socket.socket() as silent:  # accepts (backlog) but never answers the TLS handshake
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        session = outbound.http_session({"OUTBOUND_TIMEOUT": 0.5})
        started = time.monotonic()
        with pytest.raises(requests.exceptions.Timeout):
            session.get(f"https://127.0.0.1:{silent.getsockname()[1]}/")
        assert time.monotonic() - started < 3


@pytest.mark.parametrize("host, loopback", [
    ("localhost", True), ("LOCALHOST.", True), ("127.0.0.1", True), ("127.8.9.10", True),
    ("::1", True), ("[::1]", True), ("::ffff:127.0.0.1", True), ("192.0.2.2", False),
    ("smtp.example.com", False), ("localhost.example.com", False), ("", False),
])
def test_is_loopback(host, loopback):
    assert outbound.is_loopback(host) is loopback


def env_app(tmp_path, monkeypatch, **env) -> Flask:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = Flask("outbound_tests", instance_path=str(tmp_path / "instance"))
    load_config(app, None)
    return app


def test_ca_settings_come_from_the_environment(tmp_path, monkeypatch, ca):
    app = env_app(tmp_path, monkeypatch, AUTHSERVER_MAIL_CA_FILE=str(ca.cafile),
                  AUTHSERVER_CA_BUNDLE=str(ca.cafile), AUTHSERVER_OUTBOUND_TIMEOUT="4")
    assert app.config["MAIL_CA_FILE"] == str(ca.cafile)
    assert app.config["CA_BUNDLE"] == str(ca.cafile)
    assert app.config["OUTBOUND_TIMEOUT"] == 4
    check_config(app)


def test_defaults_trust_the_system_cas_with_a_ten_second_timeout(tmp_path, monkeypatch):
    for name in ("AUTHSERVER_MAIL_CA_FILE", "AUTHSERVER_CA_BUNDLE", "AUTHSERVER_OUTBOUND_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    config = env_app(tmp_path, monkeypatch).config
    assert config["MAIL_CA_FILE"] is None and config["CA_BUNDLE"] is None
    session = outbound.http_session(config)
    assert session.verify is True and session._timeout == 10


@pytest.mark.parametrize("name", ["AUTHSERVER_MAIL_CA_FILE", "AUTHSERVER_CA_BUNDLE"])
def test_start_up_fails_on_a_ca_file_that_cannot_be_loaded(tmp_path, monkeypatch, name):
    not_pem = tmp_path / "not-a-ca.pem"
    not_pem.write_text("hello\n")
    for path in (tmp_path / "missing.pem", not_pem):
        app = env_app(tmp_path, monkeypatch, **{name: str(path)})
        with pytest.raises(RuntimeError, match=f"^{name}={path} cannot be loaded"):
            check_config(app)
