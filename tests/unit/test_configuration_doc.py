"""docs/configuration.md is the one table of settings: every setting the code reads has a row,
and every row names a setting the code reads."""
from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "configuration.md"
# Files that read settings from the environment themselves (besides authserver/config.py).
ENVIRONMENT_READERS = [REPO / "deploy" / "gunicorn.conf.py", REPO / "wsgi.py",
                       *sorted((REPO / "authserver").rglob("*.py"))]


def _config_module() -> ast.Module:
    return ast.parse((REPO / "authserver" / "config.py").read_text())


def _defaults(module: ast.Module) -> set[str]:
    cls = next(n for n in module.body if isinstance(n, ast.ClassDef) and n.name == "Defaults")
    return {t.id for n in cls.body if isinstance(n, (ast.Assign, ast.AnnAssign))
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
            if isinstance(t, ast.Name)}


def _unprefixed(module: ast.Module) -> set[str]:
    """Names config.py reads from the environment without the AUTHSERVER_ prefix."""
    names = set()
    for node in ast.walk(module):
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "_MAIL_ENV" for t in node.targets):
            names |= {e.value for e in node.value.elts}
    return names


def _is_os_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and \
        isinstance(node.value, ast.Name) and node.value.id == "os"


def _environment_names(path: Path) -> set[str]:
    """String literals read through os.environ (get, [], setdefault, `in`) and click envvars."""
    tree = ast.parse(path.read_text())
    constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                 for t in n.targets if isinstance(t, ast.Name)
                 and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)}
    names = set()
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                _is_os_environ(node.func.value) and node.args:
            key = node.args[0]
        elif isinstance(node, ast.Subscript) and _is_os_environ(node.value):
            key = node.slice
        elif isinstance(node, ast.Compare) and any(_is_os_environ(c) for c in node.comparators):
            key = node.left
        elif isinstance(node, ast.keyword) and node.arg == "envvar":
            key = node.value
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            names.add(key.value)
        elif isinstance(key, ast.Name) and key.id in constants:
            names.add(constants[key.id])
    return {n for n in names if re.fullmatch(r"[A-Z][A-Z0-9_]+", n)}


def _config_reads() -> set[str]:
    """Setting names read through app.config / cfg / config anywhere in the package."""
    pattern = re.compile(r"""(?:config|cfg)(?:\[|\.get\()\s*["']([A-Z][A-Z0-9_]+)["']""")
    return {m for p in (REPO / "authserver").rglob("*.py") for m in pattern.findall(p.read_text())}


def expected_names() -> set[str]:
    """Every setting as a person sets it: AUTHSERVER_<NAME>, or the bare environment name."""
    module = _config_module()
    bare = _unprefixed(module) | {"DATABASE_URL"}
    names = {n if n in bare else f"AUTHSERVER_{n}" for n in _defaults(module) | bare}
    for path in ENVIRONMENT_READERS:
        names |= _environment_names(path)
    return names


def documented_names() -> set[str]:
    """The names in the first cell of each row of the settings table."""
    names = set()
    for line in DOC.read_text().splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def test_the_parsers_find_what_they_look_for():
    assert {"AUTHSERVER_ISSUER", "AUTHSERVER_LOOP_WINDOW", "DATABASE_URL", "MAIL_SERVER",
            "AUTHSERVER_INSTANCE_PATH", "GUNICORN_WORKERS", "AUTHSERVER_KEYS_PASSPHRASE",
            "PROMETHEUS_MULTIPROC_DIR"} <= expected_names()
    assert "PATH_INFO" not in expected_names()  # a WSGI environ, not the process's
    assert len(documented_names()) > 50


def test_every_setting_the_code_reads_has_a_row():
    missing = sorted(expected_names() - documented_names())
    assert not missing, f"add these settings to docs/configuration.md: {missing}"


def test_every_row_names_a_setting_the_code_reads():
    known = expected_names() | {f"AUTHSERVER_{n}" for n in _config_reads()}
    stale = sorted(documented_names() - known)
    assert not stale, f"docs/configuration.md lists settings nothing reads: {stale}"
