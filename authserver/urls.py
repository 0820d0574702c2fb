"""Absolute URLs on this issuer, built from AUTHSERVER_ISSUER (never from the Host header)."""
from urllib.parse import urlencode

from flask import current_app


def external(path: str, **params) -> str:
    url = current_app.config["ISSUER"] + path
    clean = {k: v for k, v in params.items() if v not in (None, "")}
    return url + ("?" + urlencode(clean) if clean else "")
