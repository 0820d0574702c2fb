"""Every file in deploy/ is exercised: the env file's settings reach the app as meant, the
systemd units pass `systemd-analyze verify`, the Containerfile's COPY and RUN steps build a
working install, and they all start gunicorn the way docs/production.md and the https suite do
(the nginx site and gunicorn.conf.py run for real in tests/prod/https_recipe/)."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from flask import Flask

from authserver.config import Defaults, load_config
from httpskit import DEPLOY, GunicornConf, read_env_file
from prodkit import BIN, REPO

UNITS = ("authserver.service", "authserver-purge.service", "authserver-purge.timer")
RECIPE = ("-c", "deploy/gunicorn.conf.py", "wsgi:app")  # what GunicornConf runs


def test_every_deploy_file_is_covered_here_or_by_the_https_suite():
    covered = {"authserver.env", "Containerfile", "gunicorn.conf.py", "nginx-authserver.conf",
               *UNITS}
    assert {p.name for p in DEPLOY.iterdir() if not p.name.startswith(("__", "."))} == covered


# --- authserver.env ----------------------------------------------------------------------------

def test_env_file_names_only_settings_the_app_knows_and_they_arrive_typed(monkeypatch, tmp_path):
    shipped = read_env_file(DEPLOY / "authserver.env")
    unknown = [k for k in shipped if k.startswith("AUTHSERVER_")
               and not hasattr(Defaults, k.removeprefix("AUTHSERVER_"))
               and k != "AUTHSERVER_INSTANCE_PATH"]  # read by create_app itself
    assert not unknown, f"deploy/authserver.env sets settings the app ignores: {unknown}"
    for name in list(os.environ):
        if name.startswith(("AUTHSERVER_", "MAIL_", "DATABASE_URL")):
            monkeypatch.delenv(name)
    for name, value in shipped.items():
        monkeypatch.setenv(name, value)
    app = Flask(__name__, instance_path=str(tmp_path))
    load_config(app, None)
    cfg = app.config
    assert cfg["ISSUER"] == "https://auth.example.com"
    assert cfg["SESSION_COOKIE_NAME"] == "__Host-authserver" and cfg["SESSION_COOKIE_SECURE"]
    assert cfg["PROXY_FIX_X_FOR"] == 1 and cfg["PROXY_FIX_X_PROTO"] == 1
    assert cfg["METRICS_ENABLED"] is True and cfg["MAIL_USE_TLS"] is True
    assert cfg["MAIL_DEFAULT_SENDER"] == "Example Sign-in <no-reply@example.com>"  # unquoted
    assert cfg["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")
    assert cfg["SQLALCHEMY_ENGINE_OPTIONS"]["pool_size"] == 5
    assert cfg["RATELIMIT_STORAGE_URI"].startswith("redis://")


# --- the systemd units -------------------------------------------------------------------------

def rewritten_units(folder: Path) -> dict[str, Path]:
    """The units with /opt/authserver (and its .venv) replaced by this checkout and its venv,
    and the environment file by a copy of deploy/authserver.env."""
    venv_bin = Path(sys.prefix) / "bin" if (Path(sys.prefix) / "bin" / "gunicorn").exists() \
        else BIN
    env_file = folder / "authserver.env"
    shutil.copyfile(DEPLOY / "authserver.env", env_file)
    out = {}
    for name in UNITS:
        text = (DEPLOY / name).read_text()
        text = text.replace("/opt/authserver/.venv/bin", str(venv_bin))
        text = text.replace("/opt/authserver", str(REPO))
        text = text.replace("/etc/authserver/authserver.env", str(env_file))
        out[name] = folder / name
        out[name].write_text(text)
    return out


def unit_value(path: Path, key: str) -> str:
    (value,) = re.findall(rf"^{key}=(.*)$", path.read_text(), re.M)
    return value


def test_systemd_units_verify_with_paths_rewritten_to_this_checkout(tmp_path):
    tool = shutil.which("systemd-analyze")
    if not tool:
        pytest.skip("systemd-analyze not found (install systemd to verify deploy/*.service)")
    units = rewritten_units(tmp_path)
    result = subprocess.run([tool, "verify", "--man=no", *map(str, units.values())],
                            capture_output=True, text=True, timeout=60, check=False)
    ours = [line for line in (result.stdout + result.stderr).splitlines()
            if str(tmp_path) in line or any(name in line for name in UNITS)]
    assert result.returncode == 0 and not ours, result.stdout + result.stderr


def test_the_unit_starts_gunicorn_as_the_docs_and_the_https_suite_do(tmp_path):
    units = rewritten_units(tmp_path)
    service = units["authserver.service"]
    workdir = Path(unit_value(service, "WorkingDirectory"))
    exec_start = shlex.split(unit_value(service, "ExecStart"))
    assert Path(exec_start[0]).name == "gunicorn" and Path(exec_start[0]).exists()
    assert tuple(exec_start[1:]) == RECIPE == tuple(GunicornConf({}, 0, tmp_path).args[1:])
    assert (workdir / RECIPE[1]).is_file() and (workdir / "wsgi.py").is_file()
    assert "gunicorn " + " ".join(RECIPE) in (REPO / "docs" / "production.md").read_text()
    pre = shlex.split(unit_value(service, "ExecStartPre"))
    assert Path(pre[0]).name == "authserver" and pre[1:] == ["init"]
    purge = shlex.split(unit_value(units["authserver-purge.service"], "ExecStart"))
    assert Path(purge[0]).exists() and purge[1:] == ["purge"]


# --- the Containerfile -------------------------------------------------------------------------

def container_steps() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per step, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Containerfile").read_text())
    steps = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            steps.append((word.upper(), " ".join(rest.split())))
    return steps


def test_containerfile_copies_what_exists_and_serves_the_recipe():
    steps = container_steps()
    known = {"FROM", "ENV", "RUN", "WORKDIR", "COPY", "USER", "VOLUME", "EXPOSE", "HEALTHCHECK",
             "CMD"}
    assert {word for word, _ in steps} <= known, steps
    for args in (a for w, a in steps if w == "COPY"):
        *sources, _target = shlex.split(args)
        for source in sources:
            assert (REPO / source).exists(), f"Containerfile copies a missing {source}"
    (cmd,) = [json.loads(a) for w, a in steps if w == "CMD"]
    assert cmd == ["gunicorn", *RECIPE]
    copied = [shlex.split(a) for w, a in steps if w == "COPY"]
    assert any("deploy/gunicorn.conf.py" in c[:-1] for c in copied), "CMD needs its -c file"
    env = " ".join(a for w, a in steps if w == "ENV")
    assert "GUNICORN_BIND=0.0.0.0:8000" in env


def fresh_venv(path: Path) -> None:
    """`python -m venv`, with this test venv's packages on a path line (pip, setuptools and the
    runtime dependencies) instead of ensurepip and downloads; `bin/pip` is pip's own launcher."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(path)
    site = next((path / "lib").glob("python3*/site-packages"))
    deps = next(p for p in sys.path if p.endswith("site-packages") and "pip" in os.listdir(p))
    (site / "_test_deps.pth").write_text(deps + "\n")
    pip = path / "bin" / "pip"
    pip.write_text(f"#!{path / 'bin' / 'python'}\nimport sys\n"
                   "from pip._internal.cli.main import main\nsys.exit(main())\n")
    pip.chmod(0o755)


def test_containerfile_install_step_builds_a_working_install(tmp_path):
    """The COPY steps into a scratch /opt/authserver, then the RUN that installs, in a fresh
    venv. Kept offline and fast: `pip install --upgrade pip` is skipped and the install runs
    with --no-deps --no-build-isolation, pip, setuptools and the dependencies coming from
    this test's venv (see fresh_venv); the package itself is the copy's."""
    steps = container_steps()
    workdir = Path(next(a for w, a in steps if w == "WORKDIR"))
    root = tmp_path / workdir.relative_to("/")
    root.mkdir(parents=True)
    for args in (a for w, a in steps if w == "COPY"):
        *sources, target = shlex.split(args)
        for source in sources:
            dest = root / target / (Path(source).name if target.endswith("/") else "")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, dest, ignore=shutil.ignore_patterns(
                    "__pycache__", "*.egg-info"))
            else:
                shutil.copyfile(REPO / source, dest)
    (install,) = [a for w, a in steps if w == "RUN" and "pip install" in a]
    commands = [shlex.split(c) for c in install.split("&&")]
    assert commands[0] == ["python", "-m", "venv", ".venv"]
    assert commands[1] == [".venv/bin/pip", "install", "--no-cache-dir", "--upgrade", "pip"]
    assert commands[2][:2] == [".venv/bin/pip", "install"] and commands[2][-2:] == ["-e", "."]
    fresh_venv(root / ".venv")
    result = subprocess.run([*commands[2], "--no-deps", "--no-build-isolation", "-q"], cwd=root,
                            capture_output=True, text=True, timeout=300, check=False,
                            env={"PATH": os.environ["PATH"], "HOME": str(tmp_path),
                                 "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    script = ("import authserver, gunicorn; from authserver.config import PROJECT_ROOT; "
              "print(authserver.__file__); print(PROJECT_ROOT)")
    probe = subprocess.run([str(root / ".venv/bin/python"), "-c", script],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
                           env={"PATH": os.environ["PATH"]})
    assert probe.returncode == 0, probe.stderr
    package, project = probe.stdout.split()
    assert Path(package).is_relative_to(root) and Path(project) == root
    assert (root / ".venv/bin/authserver").exists()
    for folder in ("templates", "static", "migrations"):
        assert (Path(project) / folder).is_dir()
