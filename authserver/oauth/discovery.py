"""OpenID Provider metadata (OIDC Discovery 1.0, RFC 8414) and the JWKS, served from memory."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, json

from .. import clock
from ..tokens import keyring
from .services import SCOPES

bp = Blueprint("discovery", __name__)


def provider_metadata(issuer: str) -> dict:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "revocation_endpoint": f"{issuer}/revoke",
        "introspection_endpoint": f"{issuer}/introspect",
        "end_session_endpoint": f"{issuer}/logout",
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "userinfo_signing_alg_values_supported": ["none"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post",
                                                  "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic",
                                                       "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic",
                                                          "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash",
                             "sid", "amr", "name", "preferred_username", "email"],
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
    }


@bp.get("/.well-known/openid-configuration")
def openid_configuration():
    cache = current_app.extensions.setdefault("authserver.discovery", {})
    body = cache.get("body")
    if body is None:
        body = cache["body"] = json.dumps(provider_metadata(current_app.config["ISSUER"]))
    return _json(body, max_age=3600)


@bp.get("/.well-known/jwks.json")
def jwks():
    body = json.dumps(keyring.current_keyring().public_jwks(clock.now()))
    return _json(body, max_age=300)


def _json(body: str, max_age: int) -> Response:
    resp = Response(body, mimetype="application/json")
    resp.headers["Cache-Control"] = f"public, max-age={max_age}"
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp
