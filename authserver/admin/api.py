"""bp "admin_api": /api/admin/... (JSON, bearer token with scope admin) and /api/openapi.json.

Errors are RFC 9457 problem details; schemas.py documents every route.
"""
from __future__ import annotations

from flask import Blueprint, g, jsonify, make_response, request, url_for

from ..accounts import upstreams
from ..accounts.models import User
from ..accounts.passkeys import PasskeyNotFound
from ..accounts.services import UserInvalid
from ..accounts.states import InvalidTransition
from ..errors import AuthserverError
from ..oauth.services import ClientInvalid
from ..passwords.policy import PasswordRejected
from . import guards, payloads, schemas, services

bp = Blueprint("admin_api", __name__)

STATUS = [  # most specific first
    (guards.BearerRejected, 0),
    ((services.UserNotFound, services.ClientNotFound, PasskeyNotFound,
      upstreams.UpstreamNotFound), 404),
    ((services.UserExists, services.SelfActionRefused, InvalidTransition,
      upstreams.IdentityTaken), 409),
    (payloads.PayloadMalformed, 400),
    (payloads.MediaTypeUnsupported, 415),
    ((payloads.PayloadInvalid, UserInvalid, PasswordRejected, ClientInvalid,
      upstreams.UpstreamInvalid), 422),
]
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
          409: "Conflict", 415: "Unsupported media type", 422: "Unprocessable content"}


@bp.before_request
def authenticate():
    guards.require_admin_token(exempt=("admin_api.openapi",))


@bp.errorhandler(AuthserverError)
def domain_error(exc: AuthserverError):
    status = next((s for kind, s in STATUS if isinstance(exc, kind)), 400)
    status = status or exc.status
    extra = {"errors": exc.errors} if getattr(exc, "errors", None) else {}
    resp = problem(status, exc.message, **extra)
    if isinstance(exc, guards.BearerRejected) and (status == 401 or exc.error):
        resp.headers["WWW-Authenticate"] = exc.www_authenticate()
    return resp


def problem(status: int, detail: str, **extra):
    """An RFC 9457 problem details answer."""
    body = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status,
            "detail": detail, **extra}
    resp = jsonify(body)
    resp.status_code = status
    resp.content_type = "application/problem+json"
    return resp


def _user_answer(user: User, status: int = 200, **headers):
    body = payloads.user_detail(user, active_sessions=services.count_active_sessions(user),
                                licences=services.licensed_client_ids(user))
    return jsonify(body), status, headers


def _no_content():
    resp = make_response("", 204)
    del resp.headers["Content-Type"]
    return resp


@bp.get("/api/openapi.json")
def openapi():
    return jsonify(schemas.OPENAPI)


@bp.get("/api/admin/users")
def list_users():
    rows, last = services.list_users(request.args.get("q", ""),
                                     after=payloads.decode_cursor("users", int),
                                     limit=payloads.query_limit())
    return jsonify(items=[payloads.user_summary(u) for u in rows],
                   next_cursor=payloads.encode_cursor("users", last))


@bp.post("/api/admin/users")
def create_user():
    fields = payloads.parse_create_user(payloads.json_object())
    user = services.create_user(fields["username"], fields["email"], fields["name"],
                                admin=fields["admin"], actor_id=g.principal.user_id,
                                client_id=g.principal.client_id)
    return _user_answer(user, 201, Location=url_for(".get_user", user_id=user.id))


@bp.get("/api/admin/users/<int:user_id>")
def get_user(user_id: int):
    return _user_answer(services.get_user_or_raise(user_id))


@bp.post("/api/admin/users/<int:user_id>/reset-password")
def reset_password(user_id: int):
    user = services.get_user_or_raise(user_id)
    services.reset_user(user, g.principal.user_id, g.principal.client_id)
    return _user_answer(user, 202)


@bp.post("/api/admin/users/<int:user_id>/temporary-password")
def temporary_password(user_id: int):
    user = services.get_user_or_raise(user_id)
    services.send_temporary_password(user, g.principal.user_id, g.principal.client_id)
    return _user_answer(user, 202)


@bp.post("/api/admin/users/<int:user_id>/disable")
def disable(user_id: int):
    user = services.get_user_or_raise(user_id)
    services.disable_user(user, g.principal.user_id, g.principal.client_id)
    return _user_answer(user)


@bp.post("/api/admin/users/<int:user_id>/enable")
def enable(user_id: int):
    user = services.get_user_or_raise(user_id)
    services.enable_user(user, g.principal.user_id, g.principal.client_id)
    return _user_answer(user)


@bp.post("/api/admin/users/<int:user_id>/reset-mfa")
def reset_mfa(user_id: int):
    user = services.get_user_or_raise(user_id)
    services.reset_mfa(user, g.principal.user_id, g.principal.client_id)
    return _user_answer(user)


@bp.get("/api/admin/users/<int:user_id>/passkeys")
def list_passkeys(user_id: int):
    user = services.get_user_or_raise(user_id)
    return jsonify({"items": [payloads.passkey_json(p) for p in services.list_passkeys(user)]})


@bp.delete("/api/admin/users/<int:user_id>/passkeys/<int:passkey_id>")
def remove_passkey(user_id: int, passkey_id: int):
    user = services.get_user_or_raise(user_id)
    services.remove_passkey(user, passkey_id, g.principal.user_id, g.principal.client_id)
    return _no_content()


@bp.delete("/api/admin/users/<int:user_id>/sessions")
def revoke_sessions(user_id: int):
    user = services.get_user_or_raise(user_id)
    services.revoke_sessions(user, g.principal.user_id, g.principal.client_id)
    return _no_content()


@bp.route("/api/admin/users/<int:user_id>/licences/<client_id>", methods=["PUT", "DELETE"])
def licence(user_id: int, client_id: str):
    user = services.get_user_or_raise(user_id)
    services.set_licence(user, client_id, request.method == "PUT", g.principal.user_id,
                         via_client=g.principal.client_id)
    return _no_content()


@bp.get("/api/admin/clients/<client_id>")
def get_client(client_id: str):
    return jsonify(payloads.client_json(services.get_client_or_raise(client_id)))


@bp.put("/api/admin/clients/<client_id>/web-origins")
def set_web_origins(client_id: str):
    client = services.get_client_or_raise(client_id)
    origins = payloads.parse_web_origins(payloads.json_object())
    services.set_web_origins(client, origins, g.principal.user_id,
                             via_client=g.principal.client_id)
    return jsonify(payloads.client_json(client))


@bp.put("/api/admin/clients/<client_id>/backchannel-logout-uri")
def backchannel_logout_uri(client_id: str):
    client = services.get_client_or_raise(client_id)
    fields = payloads.parse_backchannel_logout_uri(payloads.json_object())
    services.set_backchannel_logout_uri(client, **fields, actor_id=g.principal.user_id,
                                        via_client=g.principal.client_id)
    return jsonify(payloads.client_json(client))


@bp.get("/api/admin/events")
def list_events():
    rows, last = services.list_events(user_id=payloads.query_user_id(),
                                      before=payloads.decode_cursor("events", int),
                                      limit=payloads.query_limit())
    return jsonify(items=[payloads.event_json(e) for e in rows],
                   next_cursor=payloads.encode_cursor("events", last))


@bp.get("/api/admin/upstreams")
def list_upstreams():
    """The upstream OpenID providers (never their client secret)."""
    return jsonify(items=[payloads.upstream_json(u) for u in upstreams.all_upstreams()])


@bp.get("/api/admin/users/<int:user_id>/identities")
def list_identities(user_id: int):
    user = services.get_user_or_raise(user_id)
    return jsonify(items=[payloads.identity_json(i) for i in upstreams.identities_of(user)])


@bp.route("/api/admin/users/<int:user_id>/identities/<upstream>", methods=["PUT", "DELETE"])
def identity(user_id: int, upstream: str):
    """Link (PUT {"subject": ...}) or unlink (DELETE) the user's identity at an upstream."""
    user = services.get_user_or_raise(user_id)
    upstream = upstreams.find_or_raise(upstream)
    if request.method == "DELETE":
        upstreams.unlink(user, upstream, actor_id=g.principal.user_id)
        return _no_content()
    subject = payloads.parse_identity(payloads.json_object())
    linked = upstreams.link(user, upstream, subject, actor_id=g.principal.user_id)
    return jsonify(payloads.identity_json(linked)), 200
