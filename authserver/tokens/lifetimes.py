"""Token lifetimes come from our settings, in one place (never Authlib's defaults)."""
from flask import current_app


def access_token_ttl(client, grant_type: str) -> int:
    return int(current_app.config["ACCESS_TOKEN_TTL"])


def id_token_ttl() -> int:
    return int(current_app.config["ID_TOKEN_TTL"])


def refresh_token_ttl() -> int:
    return int(current_app.config["REFRESH_TOKEN_TTL"])
