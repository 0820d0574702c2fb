"""The admin API's wire format: request parsing that never lets bad input reach a 500,
opaque cursors, and the JSON shapes of users and events (components in schemas.py)."""
from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timezone

from flask import request

from ..accounts.models import User
from ..accounts.services import USERNAME_RE
from ..audit import SecurityEvent
from ..errors import AuthserverError
from ..oauth.cors import client_web_origins
from ..oauth.models import Client
from ..urls import external
from .services import MAX_ID

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
CREATE_FIELDS = {"username": str, "email": str, "name": str, "admin": bool}
CREATE_MAX = {"username": 150, "email": 320, "name": 200}
MAX_WEB_ORIGINS = 20


class PayloadMalformed(AuthserverError):
    """400: the body is not JSON at all."""


class MediaTypeUnsupported(AuthserverError):
    """415: the body is not declared as JSON."""


class PayloadInvalid(AuthserverError):
    """422: well-formed, but the values break the schema; `errors` says where."""

    def __init__(self, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.errors = errors or []


def json_object() -> dict:
    """The request body as a JSON object: 415, 400 or 422 otherwise, never a 500."""
    if not request.is_json:
        raise MediaTypeUnsupported("Send the body as application/json.")
    try:
        data = json.loads(request.get_data(cache=True) or b"")
    except (ValueError, RecursionError) as exc:  # deep nesting raises RecursionError
        raise PayloadMalformed("The body is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise PayloadInvalid("The body must be a JSON object.")
    return data


def parse_create_user(data: dict) -> dict:
    """Check a UserCreate body: known fields only, right types, within length limits."""
    errors = [{"field": k, "message": "Unknown field."} for k in data if k not in CREATE_FIELDS]
    for field, kind in CREATE_FIELDS.items():
        value = data.get(field)
        if field not in data:
            if field in ("username", "email"):
                errors.append({"field": field, "message": "Required."})
        elif type(value) is not kind:
            errors.append({"field": field, "message": f"Must be a {kind.__name__}."})
        elif kind is str and len(value) > CREATE_MAX[field]:
            errors.append({"field": field, "message": f"At most {CREATE_MAX[field]} characters."})
    if not errors and not USERNAME_RE.match(data["username"]):
        errors.append({"field": "username", "message": "1-150 letters, digits or . _ @ + -"})
    if errors:
        raise PayloadInvalid("The user could not be created.", errors)
    return {"username": data["username"], "email": data["email"],
            "name": data.get("name") or "", "admin": bool(data.get("admin", False))}


def parse_web_origins(data: dict) -> list[str] | None:
    """Check a WebOrigins body: `web_origins`, a list of strings or null (the default)."""
    errors = [{"field": k, "message": "Unknown field."} for k in data if k != "web_origins"]
    value = data.get("web_origins", ...)
    if value is ...:
        errors.append({"field": "web_origins", "message": "Required (null for the default)."})
    elif value is not None and (not isinstance(value, list) or len(value) > MAX_WEB_ORIGINS
                                or not all(isinstance(v, str) for v in value)):
        errors.append({"field": "web_origins",
                       "message": f"A list of at most {MAX_WEB_ORIGINS} strings, or null."})
    if errors:
        raise PayloadInvalid("The web origins could not be set.", errors)
    return value


def query_int(name: str, default: int | None, low: int, high: int) -> int | None:
    """An integer query parameter within [low, high], else 422."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or not low <= int(raw) <= high:
        raise PayloadInvalid(f"{name} must be an integer from {low} to {high}.",
                             [{"field": name, "message": "Out of range or not an integer."}])
    return int(raw)


def query_limit() -> int:
    return query_int("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)


def query_user_id() -> int | None:
    return query_int("user_id", None, 1, MAX_ID)


def encode_cursor(kind: str, value) -> str | None:
    """An opaque cursor; clients pass it back unchanged."""
    if value is None:
        return None
    raw = json.dumps({"k": kind, "v": value}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(kind: str, expected: type):
    """The value inside the `cursor` parameter, or None; 422 when it is not one of ours."""
    raw = request.args.get("cursor") or ""
    if not raw:
        return None
    value = None
    try:
        if len(raw) <= 400:
            data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
            value = data["v"] if data.get("k") == kind else None
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error):
        value = None
    if isinstance(value, str) and any(ord(c) < 32 for c in value):
        value = None  # never a key we issued; PostgreSQL would refuse a NUL anyway
    if type(value) is int and not 0 < value <= MAX_ID:
        value = None
    if type(value) is not expected:
        raise PayloadInvalid("cursor is not valid; use the next_cursor of a previous page.",
                             [{"field": "cursor", "message": "Not a cursor from this API."}])
    return value


def _when(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def user_summary(user: User) -> dict:
    return {"id": user.id, "sub": user.sub, "username": user.username, "email": user.email,
            "name": user.name, "state": user.state, "is_admin": user.is_admin,
            "mfa_enabled": user.has_second_step, "last_login_at": _when(user.last_login_at),
            "created_at": _when(user.created_at)}


def user_detail(user: User, *, active_sessions: int, licences: list[str]) -> dict:
    return {**user_summary(user), "active_sessions": active_sessions, "licences": licences,
            "temp_password_expires_at": _when(user.temp_password_expires_at)}


def client_json(client: Client) -> dict:
    return {"client_id": client.client_id, "name": client.name, "public": client.public,
            "redirect_uris": list(client.redirect_uris),
            "web_origins": client_web_origins(client.redirect_uris, client.web_origins),
            "web_origins_from_redirect_uris": client.web_origins is None,
            "backchannel_logout_uri": client.backchannel_logout_uri,
            "created_at": _when(client.created_at)}


def passkey_json(passkey) -> dict:
    return {"id": passkey.id, "name": passkey.name, "second_step": passkey.second_step,
            "backed_up": passkey.backed_up, "transports": list(passkey.transports or []),
            "created_at": _when(passkey.created_at), "last_used_at": _when(passkey.last_used_at)}


def event_json(event: SecurityEvent) -> dict:
    return {"id": event.id, "name": event.name, "user_id": event.user_id,
            "actor_id": event.actor_id, "client_id": event.client_id, "ip": event.ip,
            "data": event.data if isinstance(event.data, dict) else {},
            "created_at": _when(event.created_at)}


BACKCHANNEL_FIELDS = ("backchannel_logout_uri",)


def parse_backchannel_logout_uri(data: dict) -> dict:
    """Check a BackchannelLogoutUri body: backchannel_logout_uri, a string or null, nothing else."""
    errors = [{"field": k, "message": "Unknown field."} for k in data
              if k not in BACKCHANNEL_FIELDS]
    if "backchannel_logout_uri" not in data:
        errors.append({"field": "backchannel_logout_uri", "message": "Required."})
    else:
        value = data["backchannel_logout_uri"]
        if value is not None and (not isinstance(value, str) or len(value) > 320):
            errors.append({"field": "backchannel_logout_uri",
                           "message": "A string of at most 320 characters, or null."})
    if errors:
        raise PayloadInvalid("The body breaks the BackchannelLogoutUri schema.", errors)
    return {"backchannel_logout_uri": data["backchannel_logout_uri"] or None}


def upstream_json(upstream) -> dict:
    return {"name": upstream.name, "issuer": upstream.issuer, "client_id": upstream.client_id,
            "label": upstream.label, "domains": list(upstream.domains or []),
            "create_users": bool(upstream.create_users),
            "redirect_uri": external(f"/login/upstream/{upstream.name}/callback")}


def identity_json(identity) -> dict:
    return {"upstream": identity.upstream.name, "subject": identity.subject,
            "email": identity.email, "created_at": _when(identity.created_at),
            "last_used_at": _when(identity.last_used_at)}


def parse_identity(data: dict) -> str:
    """An IdentityLink body: {"subject": "..."} and nothing else."""
    errors = [{"field": k, "message": "Unknown field."} for k in data if k != "subject"]
    subject = data.get("subject")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 255:
        errors.append({"field": "subject", "message": "A string of 1-255 characters."})
    if errors:
        raise PayloadInvalid("The body does not match IdentityLink.", errors)
    return subject.strip()
