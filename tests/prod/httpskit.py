"""The production recipe on one machine, as the README sets it up: nginx with the shipped site
(deploy/nginx-authserver.conf), gunicorn with deploy/gunicorn.conf.py, the settings of
deploy/authserver.env, for the issuer https://auth.example.com.

Only what a test machine cannot have is swapped, each swap named here:
- the certificate: a self-signed one for auth.example.com made with `cryptography`;
- addresses: nginx listens on 127.0.0.1 at free ports, its upstream is gunicorn's free port;
  the browser and this process reach https://auth.example.com (port 443 as far as they know)
  at 127.0.0.1:<nginx's port> (Chromium's --host-resolver-rules, `mapped_host()` here);
- stand-ins for the outside systems of authserver.env: PostgreSQL when DATABASE_URL points at
  it (else SQLite), Redis db 2 with a per-run key prefix, aiosmtpd on 127.0.0.1 requiring
  STARTTLS (MAIL_USE_TLS=true as shipped, a certificate from a test CA named in
  AUTHSERVER_MAIL_CA_FILE) and a login, a fresh secret, keys and instance folder in the test's
  temporary folder; fast password hashing, because these tests are about TLS, the proxy and
  the browser, not argon2 cost.
"""
from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from e2e.smtp_sink import Inbox
from prodkit import BIN, FAST_HASH, REPO, base_env
from tlskit import SMTP_PASSWORD, SMTP_USER, TestCA, server_context

HOST = "auth.example.com"
ISSUER = f"https://{HOST}"
DEPLOY = REPO / "deploy"
REDIS_DB = 2
NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None)
NGINX_HOW = ("needs Debian's nginx and root: run ./scripts/test as root (it installs nginx-light "
             "when missing), or apt-get install nginx-light")


def nginx_or_skip() -> str:
    if os.geteuid() != 0:
        pytest.skip("production-shaped https suite: " + NGINX_HOW)
    if not NGINX:
        pytest.skip("production-shaped https suite: " + NGINX_HOW)
    return NGINX


# --- the certificate ---------------------------------------------------------------------------

def make_certificate(folder: Path, *names: str) -> tuple[Path, Path]:
    """A self-signed certificate (its own CA) for `names`; returns (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.now(timezone.utc)
    alt = [x509.IPAddress(ipaddress.ip_address(n)) if n[0].isdigit() else x509.DNSName(n)
           for n in names]
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


# --- nginx: the shipped site, with addresses and certificate paths swapped -----------------------

def _swap(text: str, pattern: str, replacement: str, count: int) -> str:
    """re.subn that insists the shipped file still has exactly `count` such lines."""
    new, found = re.subn(pattern, replacement, text, flags=re.M)
    assert found == count, f"deploy/nginx-authserver.conf: expected {count} x {pattern!r}"
    return new


def nginx_site(*, http_port: int, https_port: int, upstream_port: int, cert: Path,
               key: Path) -> str:
    """deploy/nginx-authserver.conf with only listen addresses, upstream and certificate swapped."""
    site = (DEPLOY / "nginx-authserver.conf").read_text()
    site = _swap(site, r"^(\s*)listen \[::\]:\d+[^;]*;", r"\1# (IPv6 listen dropped by the test)",
                 2)
    site = _swap(site, r"^(\s*)listen 80;", rf"\1listen 127.0.0.1:{http_port};", 1)
    site = _swap(site, r"^(\s*)listen 443 ssl;", rf"\1listen 127.0.0.1:{https_port} ssl;", 1)
    site = _swap(site, r"^(\s*)server 127\.0\.0\.1:8000;", rf"\1server 127.0.0.1:{upstream_port};",
                 1)
    site = _swap(site, r"^(\s*ssl_certificate\s+)\S+;", rf"\g<1>{cert};", 1)
    return _swap(site, r"^(\s*ssl_certificate_key\s+)\S+;", rf"\g<1>{key};", 1)


def nginx_main(folder: Path, site: Path) -> str:
    """The test's nginx.conf around the site: its own pid, logs and temp folders."""
    temp = "\n".join(f"    {kind}_temp_path {folder / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"user root root;\nworker_processes 1;\npid {folder / 'nginx.pid'};\n"
            f"error_log {folder / 'error.log'} warn;\nevents {{ worker_connections 256; }}\n"
            f"http {{\n    access_log {folder / 'access.log'};\n{temp}\n"
            f"    include {site};\n}}\n")


class Nginx:
    """Our own nginx master (never the system service), stopped by its PID."""

    def __init__(self, folder: Path, site_text: str, ports: tuple[int, ...]):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.ports = folder, ports
        (folder / "site.conf").write_text(site_text)
        self.conf = folder / "nginx.conf"
        self.conf.write_text(nginx_main(folder, folder / "site.conf"))
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10) -> Nginx:
        self.proc = subprocess.Popen([NGINX, "-c", str(self.conf), "-p", str(self.folder),
                                      "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + timeout
        for port in self.ports:
            while not _accepts(port):
                if self.proc.poll() is not None:
                    raise AssertionError(f"nginx exited {self.proc.returncode}: "
                                         f"{self.proc.stderr.read().decode(errors='replace')}")
                assert time.monotonic() < deadline, f"nginx not listening on {port}"
                time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)  # graceful: the master stops its workers
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def error_log(self) -> str:
        path = self.folder / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


# --- settings: deploy/authserver.env with local stand-ins --------------------------------------

def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile reads them (quotes stripped, # comments)."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), f"{path.name}: bad line {line!r}"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[name] = value
    return env


class MailRelay:
    """The SMTP relay of authserver.env: aiosmtpd on 127.0.0.1 that requires STARTTLS (a
    certificate for 127.0.0.1 from a test CA) and a login before it takes a message."""

    def __init__(self, folder: Path, port: int):
        folder.mkdir(parents=True, exist_ok=True)
        ca = TestCA(folder)
        self.port, self.ca_file, self.inbox = port, ca.cafile, Inbox()
        self._controller = Controller(
            self.inbox, hostname="127.0.0.1", port=port, auth_required=True,
            authenticator=self._login, require_starttls=True,
            tls_context=server_context(*ca.issue("127.0.0.1")))

    @staticmethod
    def _login(server, session, envelope, mechanism, auth_data) -> AuthResult:
        return AuthResult(success=auth_data.login == SMTP_USER.encode()
                          and auth_data.password == SMTP_PASSWORD.encode())

    def start(self) -> MailRelay:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def settings(self) -> dict[str, str]:
        """Stand-ins for the relay's lines of authserver.env (MAIL_USE_TLS stays as shipped)."""
        return {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(self.port),
                "MAIL_USERNAME": SMTP_USER, "MAIL_PASSWORD": SMTP_PASSWORD,
                "AUTHSERVER_MAIL_CA_FILE": str(self.ca_file)}


def deployment_settings(shipped: dict[str, str], root: Path, *, database_url: str,
                        mail: MailRelay, redis_url: str, prefix: str) -> dict[str, str]:
    """The shipped settings with each outside system replaced by a local stand-in."""
    settings = dict(shipped)
    settings.update(
        AUTHSERVER_SECRET_KEY=secrets.token_urlsafe(48),
        DATABASE_URL=database_url,
        AUTHSERVER_KEYS_DIR=str(root / "keys"),
        AUTHSERVER_INSTANCE_PATH=str(root / "instance"),
        AUTHSERVER_RATELIMIT_STORAGE_URI=redis_url,
        AUTHSERVER_RATELIMIT_KEY_PREFIX=prefix,
        **mail.settings())
    return settings


def redis_url_or_memory() -> str:
    """Redis db 2 on 127.0.0.1 (as authserver.env uses Redis), else per-process counters."""
    import redis
    try:
        redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return "memory://"
    return f"redis://127.0.0.1:6379/{REDIS_DB}"


def clear_redis(url: str, prefix: str) -> None:
    if not url.startswith("redis"):
        return
    import redis
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"*{prefix}*", count=500):
        client.delete(key)


# --- gunicorn as the systemd unit runs it ------------------------------------------------------

class GunicornConf:
    """`gunicorn -c deploy/gunicorn.conf.py wsgi:app`, the unit's ExecStart; the port set
    through GUNICORN_BIND, which that file reads."""

    def __init__(self, env: dict, port: int, log_dir: Path):
        self.env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}"}
        self.port = port
        self.err_path = log_dir / "gunicorn.err"
        self.args = [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "wsgi:app"]
        self.proc: subprocess.Popen | None = None

    def start(self) -> GunicornConf:
        with open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(self.args, cwd=REPO, env=self.env,
                                         stdout=subprocess.DEVNULL, stderr=err,
                                         start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"gunicorn exited:\n{self.stderr()[-3000:]}"
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"gunicorn not ready:\n{self.stderr()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace") if self.err_path.exists() else ""


def server_env(settings: dict[str, str]) -> dict[str, str]:
    """The process environment: the deployment's settings and this checkout on PYTHONPATH."""
    return base_env(**settings, **FAST_HASH, PYTHONPATH=str(REPO),
                    GUNICORN_WORKERS=os.environ.get("GUNICORN_WORKERS", "2"))


SETTING_PREFIXES = ("AUTHSERVER_", "MAIL_", "DATABASE_URL", "GUNICORN_")


def authserver(env: dict[str, str], *args: str) -> str:
    """`authserver ARGS` with the deployment's environment, run in this process (the same click
    commands as the console script, without a Python start per command on a busy machine)."""
    from click.testing import CliRunner

    from authserver.cli import main
    unset = {k: None for k in os.environ if k.startswith(SETTING_PREFIXES) and k not in env}
    settings = {k: v for k, v in env.items() if k.startswith(SETTING_PREFIXES)}
    result = CliRunner().invoke(main, list(args), env={**unset, **settings},
                                catch_exceptions=False)
    assert result.exit_code == 0, f"authserver {' '.join(args)}: {result.output}"
    return result.output


# --- reaching https://auth.example.com from this process ---------------------------------------

@contextmanager
def mapped_host(host: str, ports: dict[int, int]):
    """Resolve `host` to 127.0.0.1 and its ports 443/80 to nginx's ports, in this process only
    (requests, Authlib's client), like the browser's --host-resolver-rules. TLS still checks
    the certificate for `host`."""
    real = socket.getaddrinfo

    def getaddrinfo(name, port, *args, **kwargs):
        if name == host:
            number = {"https": 443, "http": 80, None: 443}.get(port, port)
            return real("127.0.0.1", ports.get(int(number), number), *args, **kwargs)
        return real(name, port, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = real


@dataclass
class Deployment:
    """The running recipe: what tests need to drive it."""

    issuer: str
    cert: Path
    https_port: int
    http_port: int
    gunicorn_port: int
    env: dict
    root: Path
    nginx: Nginx
    gunicorn: GunicornConf
    clients: dict = field(default_factory=dict)

    def session(self) -> requests.Session:
        """requests over https through nginx, verifying the test certificate."""
        s = requests.Session()
        s.verify = str(self.cert)
        return s

    @property
    def resolver_rules(self) -> str:
        return f"MAP {HOST} 127.0.0.1:{self.https_port}"
