"""STYLE.md conventions, checked on the source with `ast`: one clock seam, imports that point
down the layers of "3 Import direction", and no function-level imports."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "authserver"

LAYERS = {
    **dict.fromkeys(["config", "extensions", "clock", "db", "security", "audit", "errors",
                     "urls", "health", "schema", "outbound", "sealing", "counters",
                     "sqlite_writes", "memory_limits"], 1),
    # Not in STYLE.md's list: metrics and log plumbing with no authserver imports, used by
    # audit (layer 1), so it sits in layer 1 too.
    "observability": 1,
    "mail": 2,
    "accounts": 3,
    **dict.fromkeys(["passwords", "tokens"], 4),
    "oauth": 5,
    "admin": 6,
    **dict.fromkeys(["app", "cli", "commands", "models", "__init__"], 7),
}

# Known, deliberate exceptions: (importing module, imported module) -> why.
LAYER_ALLOWED: dict[tuple[str, str], str] = {}

# (module, line) of a function-level import that is deliberate, with the reason.
LOCAL_IMPORT_ALLOWED: dict[tuple[str, int], str] = {}

CLOCK_MODULE = "authserver.clock"
BANNED_CLOCK_READS = {
    ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
    ("time", "time"), ("time", "time_ns"), ("func", "now"),
}
BANNED_FROM_IMPORTS = {("time", "time"), ("time", "time_ns")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))
           if "__pycache__" not in p.parts}


def parse(name: str) -> ast.Module:
    return ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))


def layer_of(module: str) -> int | None:
    """The layer of authserver.<top>...; None for a module outside the package."""
    parts = module.split(".")
    if parts[0] != "authserver":
        return None
    top = parts[1] if len(parts) > 1 else "__init__"
    return LAYERS.get(top)


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def resolve(importer: str, node: ast.ImportFrom) -> list[str]:
    """Absolute names of what `from X import a, b` brings in (a module or a module's name)."""
    if node.level:
        base = importer.split(".")
        if not is_package(importer):
            base = base[:-1]
        base = base[:len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    targets = []
    for alias in node.names:
        candidate = f"{prefix}.{alias.name}"
        targets.append(candidate if candidate in MODULES else prefix)
    return targets


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of import nodes under `if TYPE_CHECKING:` (annotations only, no runtime edge)."""
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded |= {id(child) for child in ast.walk(node)
                        if isinstance(child, (ast.Import, ast.ImportFrom))}
    return guarded


def imports_of(name: str) -> list[tuple[int, str]]:
    """(line, imported module) for every runtime import of authserver.* in the module."""
    tree = parse(name)
    guarded = _type_checking_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found += [(node.lineno, target) for target in resolve(name, node)]
    return [(line, target) for line, target in found if target.startswith("authserver")]


def test_every_module_is_walked_and_has_a_layer():
    assert len(MODULES) > 30
    assert not [name for name in MODULES if layer_of(name) is None]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down_the_layers(name):
    mine = layer_of(name)
    wrong = [f"line {line}: {name} (layer {mine}) imports {target} (layer {layer_of(target)})"
             for line, target in imports_of(name)
             if (layer_of(target) or 0) > mine and (name, target) not in LAYER_ALLOWED]
    assert not wrong, "\n".join(wrong)


def test_nobody_imports_the_app_module():
    offenders = [f"{name} line {line}" for name in MODULES for line, target in imports_of(name)
                 if target == "authserver.app" and name not in ("authserver", "authserver.cli")]
    assert not offenders


def clock_reads(tree: ast.Module) -> list[str]:
    """Every banned wall-clock read (STYLE.md "7 Time"), called or merely referenced."""
    reads = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            owner = node.value
            owner_name = owner.id if isinstance(owner, ast.Name) else \
                owner.attr if isinstance(owner, ast.Attribute) else None
            if (owner_name, node.attr) in BANNED_CLOCK_READS:
                reads.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and node.module == "time":
            reads += [f"line {node.lineno}: from time import {alias.name}"
                      for alias in node.names if (node.module, alias.name) in BANNED_FROM_IMPORTS]
    return reads


def local_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, source) of every import inside a function or lambda."""
    found = set()
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            found |= {(node.lineno, ast.unparse(node)) for node in ast.walk(func)
                      if isinstance(node, (ast.Import, ast.ImportFrom))}
    return sorted(found)


@pytest.mark.parametrize("name", sorted(set(MODULES) - {CLOCK_MODULE}))
def test_only_clock_reads_the_wall_clock(name):
    reads = clock_reads(parse(name))
    assert not reads, f"{name} reads the clock; call clock.now() instead:\n" + "\n".join(reads)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_function_level_imports(name):
    local = [f"line {line}: {source}" for line, source in local_imports(parse(name))
             if (name, line) not in LOCAL_IMPORT_ALLOWED]
    assert not local, f"{name} imports inside a function:\n" + "\n".join(local)


def test_the_checks_catch_what_they_should():
    """The walker itself: relative imports resolve, clock reads and local imports are seen."""
    tree = ast.parse("from datetime import datetime, date\nimport time\n"
                     "from time import time as t0\n"
                     "created = Column(default=datetime.utcnow, server_default=func.now())\n"
                     "def f():\n    import os\n    return datetime.now(), date.today(), "
                     "time.time(), time.monotonic()\n")
    assert len(clock_reads(tree)) == 6
    assert local_imports(tree) == [(6, "import os")]
    node = ast.parse("from ..accounts import services").body[0]
    assert resolve("authserver.oauth.views", node) == ["authserver.accounts.services"]
    node = ast.parse("from .. import clock, security").body[0]
    assert resolve("authserver.tokens.services", node) == ["authserver.clock",
                                                           "authserver.security"]
    node = ast.parse("from . import services").body[0]
    assert resolve("authserver.accounts", node) == ["authserver.accounts.services"]
    assert layer_of("authserver.oauth.views") == 5
    assert layer_of("authserver.clock") == 1


# --- "Services commit; lookups never do" (STYLE.md, review lesson 3) -------------------------

# Where a commit() may appear besides a `services` module: each entry says why.
COMMIT_MODULES: dict[str, str] = {
    "authserver.commands": "CLI commands are use cases of their own (authserver ...)",
    "authserver.mail.sender": "the delivery worker claims and records each message itself",
    "authserver.schema": "init_schema runs DDL and migrations on its own connection",
    "authserver.accounts.signin": "the sign-in record's use cases: begin, resume, complete, end",
    "authserver.accounts.mfa": "the second step's management use cases (enrol, new codes, off)",
    "authserver.accounts.factors": "a factor spends codes and counts wrong tries atomically",
    "authserver.accounts.throttle": "an attempt is claimed and committed before the hash runs",
    "authserver.accounts.passkeys": "the passkey use cases (add, remove)",
    "authserver.accounts.upstreams": "the upstream linking use cases (add, link, create users)",
    "authserver.tokens.keystore": "the key set's use cases (ensure, rotate, import), locked",
}
COMMIT_FUNCTIONS: dict[tuple[str, str], str] = {
    ("authserver.db", "delete_in_batches"): "purge: one short transaction per batch",
    ("authserver.sqlite_writes", "WriterQueueConnection.commit"): "the DB-API connection itself",
    ("authserver.oauth.grants", "AuthorizationCodeGrant.save_token"): "Authlib save_ hook",
    ("authserver.oauth.grants", "RefreshTokenGrant.save_token"): "Authlib save_ hook",
    ("authserver.oauth.endpoints", "RevocationEndpoint.revoke_token"): "Authlib RFC 7009 hook",
    ("authserver.oauth.logout", "log_out"): "the RP-initiated logout use case",
}
# A function named like a lookup never commits, not even through a helper of its module.
LOOKUP_PREFIXES = ("find_", "get_", "query_", "load_", "is_", "has_", "list_", "count_",
                   "current_", "holds_", "lookup_", "search_")


def functions_of(tree: ast.Module) -> dict[str, ast.AST]:
    """Qualified name (Class.method, outer.inner) -> function node, for every function."""
    found = {}

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found[prefix + child.name] = child
                walk(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                walk(child, prefix + child.name + ".")
    walk(tree, "")
    return found


def commits(func: ast.AST) -> bool:
    return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
               and node.func.attr == "commit" for node in ast.walk(func))


def committing_functions(tree: ast.Module) -> set[str]:
    """Functions that commit directly or by calling (by bare name) a function of the same
    module that does, to any depth."""
    funcs = functions_of(tree)
    short = {name.rsplit(".", 1)[-1]: name for name in funcs}
    calls = {name: {short[node.func.id] for node in ast.walk(func)
                    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in short}
             for name, func in funcs.items()}
    found = {name for name, func in funcs.items() if commits(func)}
    while True:
        more = {name for name, callees in calls.items() if callees & found} - found
        if not more:
            return found
        found |= more


def commit_allowed(module: str, function: str) -> bool:
    if module.rsplit(".", 1)[-1] == "services":
        return True
    if any(module == m or module.startswith(m + ".") for m in COMMIT_MODULES):
        return True
    return (module, function) in COMMIT_FUNCTIONS


@pytest.mark.parametrize("name", sorted(MODULES))
def test_only_services_and_listed_hooks_commit(name):
    tree = parse(name)
    wrong = [f for f, node in functions_of(tree).items()
             if commits(node) and not commit_allowed(name, f)]
    assert not wrong, (f"{name} commits outside a service: {wrong}; move the commit into a "
                       "service function (or list the Authlib hook in COMMIT_FUNCTIONS)")


@pytest.mark.parametrize("name", sorted(MODULES))
def test_lookups_never_commit(name):
    wrong = [f for f in committing_functions(parse(name))
             if f.rsplit(".", 1)[-1].startswith(LOOKUP_PREFIXES)]
    assert not wrong, (f"{name}: lookups that commit: {wrong}; return a verdict and let the "
                       "service that owns the use case record it")


def test_the_commit_rules_catch_what_they_should():
    tree = ast.parse("def find_x():\n    return _helper()\n"
                     "def _helper():\n    db.session.commit()\n"
                     "class G:\n    def save_token(self):\n        db.session.commit()\n"
                     "def view():\n    return 1\n")
    assert committing_functions(tree) == {"find_x", "_helper", "G.save_token"}
    assert commit_allowed("authserver.tokens.services", "anything")
    assert commit_allowed("authserver.commands.users", "create")
    assert not commit_allowed("authserver.oauth.views", "logout")
    assert not commit_allowed("authserver.oauth.grants", "AuthorizationCodeGrant.authenticate_user")
