"""The parts of Authlib's refresh grant that our hot path relies on, pinned (STYLE.md, review
lesson 5): grants.RefreshTokenGrant commits the rotation inside authenticate_refresh_token,
after Authlib authenticated the client and before its scope check runs a second time, and it
passes Authlib's own _validate_token_scope as the check to make before committing. If
upstream reorders validate_token_request, moves a check out of it, or changes what
create_token_response does after it, this fails: re-read those methods, adapt
oauth/grants.py and tokens/services.exchange_refresh_token, then update the digests and the
pin in pyproject.toml together.
"""
from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
from importlib.metadata import version
from pathlib import Path

from authlib.oauth2.rfc6749.grants import RefreshTokenGrant

PINNED_MINOR = "1.9"

# sha256 of each method's code (ast.dump, docstrings dropped), Authlib 1.9.
DIGESTS = {
    "validate_token_request":
        "b3cb6f7bb5b9ac4cbc064f336147c8ce0dc9d371800e4e649043e84a91580ecd",
    "_validate_request_client":
        "f31739e79320b525a3726d681aa8d2e2797a7e939782cf76356197aad77dac43",
    "_validate_request_token":
        "490e6561602a7981d1e300d21a7057607cfab717e1c288693a39775fcbdf983c",
    "_validate_token_scope":
        "9e54715a9f554138e788d0b4e3de7cd8581483289d209f511e2df9d203d0cf18",
    "create_token_response":
        "efeb130886d193b986423573c2e6335430a1200ca482d545c68ff88a14fd72e6",
    "issue_token":
        "d702a380286005466ba44ffd08112a8b7611f38e84bd7583c17065812b7f4c2d",
}


def unwrapped(func):
    """The function behind Authlib's @hooked wrapper (it keeps no __wrapped__)."""
    inner = [c.cell_contents for c in func.__closure__ or () if inspect.isfunction(c.cell_contents)]
    return inner[0] if inner else func


def code_digest(func) -> str:
    if func.__name__ == "wrapper":
        func = unwrapped(func)
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    node = tree.body[0]
    if node.body and isinstance(node.body[0], ast.Expr) and \
            isinstance(node.body[0].value, ast.Constant) and \
            isinstance(node.body[0].value.value, str):
        node.body = node.body[1:]
    node.decorator_list = []
    return hashlib.sha256(ast.dump(node).encode()).hexdigest()


def test_authlib_is_the_minor_version_the_refresh_hot_path_was_checked_against():
    assert version("authlib").startswith(PINNED_MINOR + ".")
    pyproject = (Path(__file__).resolve().parents[3] / "pyproject.toml").read_text()
    assert f'"Authlib>={PINNED_MINOR},<' in pyproject


def test_the_refresh_grant_methods_we_rely_on_are_unchanged_upstream():
    found = {name: code_digest(getattr(RefreshTokenGrant, name)) for name in DIGESTS}
    assert found == DIGESTS
