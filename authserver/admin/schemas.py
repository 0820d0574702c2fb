"""The admin API's OpenAPI 3.1 document, written by hand to match api.py route for route.

tests/unit/admin/test_schemas.py checks that every route here is served and every served
route is here; Schemathesis checks the answers against it.
"""
from __future__ import annotations

from ..accounts.states import AccountState
from .payloads import DEFAULT_LIMIT, MAX_LIMIT
from .services import MAX_ID

PROBLEM = "application/problem+json"
DATE_TIME = {"type": "string", "format": "date-time"}
NULLABLE_DATE_TIME = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problems(*statuses: int) -> dict:
    """The problem+json answers (RFC 9457) an operation can give."""
    text = {400: "The body is not valid JSON.",
            401: "No access token, or it is invalid, expired or revoked.",
            403: "The token lacks scope admin, or its user is not an administrator.",
            404: "No such user or application.",
            409: "The account's state does not allow this, or the name is taken.",
            415: "The body is not application/json.",
            422: "The values break the schema."}
    out = {}
    for status in statuses:
        answer = {"description": text[status], "content": {PROBLEM: {"schema": _ref("Problem")}}}
        if status == 401:
            answer["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"},
                                                      "description": "Bearer challenge"}}
        out[str(status)] = answer
    return out


def _user_id() -> dict:
    return {"name": "id", "in": "path", "required": True, "description": "The user's id.",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}


def _client_id() -> dict:
    return {"name": "client_id", "in": "path", "required": True,
            "description": "The application's client_id.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 64,
                       "pattern": "^[A-Za-z0-9._~-]+$"}}


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                         "default": DEFAULT_LIMIT}, "Page size.")
CURSOR = _query("cursor", {"type": "string", "maxLength": 400},
                "The next_cursor of the previous page (opaque).")


def _op(summary: str, op_id: str, responses: dict, *, parameters=(), body=None) -> dict:
    op = {"summary": summary, "operationId": op_id, "tags": ["admin"],
          "parameters": list(parameters), "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": body}}}
    return op


def _user_action(summary: str, op_id: str, status: str, *extra: int) -> dict:
    return _op(summary, op_id, {status: _json(_ref("User"), "The user after the action."),
                                **_problems(401, 403, 404, *extra)}, parameters=[_user_id()])


def _no_content(summary: str, op_id: str, parameters: list) -> dict:
    return _op(summary, op_id, {"204": {"description": "Done."},
                                **_problems(401, 403, 404)}, parameters=parameters)


USER_SUMMARY_PROPS = {
    "id": {"type": "integer"},
    "sub": {"type": "string", "description": "The subject in this user's tokens."},
    "username": {"type": "string"},
    "email": {"type": "string"},
    "name": {"type": "string"},
    "state": {"type": "string", "enum": [s.value for s in AccountState]},
    "is_admin": {"type": "boolean"},
    "mfa_enabled": {"type": "boolean"},
    "last_login_at": NULLABLE_DATE_TIME,
    "created_at": DATE_TIME,
}
USER_PROPS = {
    **USER_SUMMARY_PROPS,
    "active_sessions": {"type": "integer", "minimum": 0},
    "licences": {"type": "array", "items": {"type": "string"},
                 "description": "client_ids of the applications the user is licensed for."},
    "temp_password_expires_at": NULLABLE_DATE_TIME,
}
WEB_ORIGINS = {"type": "array", "maxItems": 20,
               "items": {"type": "string", "maxLength": 255},
               "description": "Origins (scheme://host[:port]; https, or http for localhost) "
                              "whose pages may call /token, /userinfo and /revoke."}
CLIENT_PROPS = {
    "client_id": {"type": "string"},
    "name": {"type": "string"},
    "public": {"type": "boolean"},
    "redirect_uris": {"type": "array", "items": {"type": "string"}},
    "web_origins": {"type": "array", "items": {"type": "string"},
                    "description": "The origins in force (registered, or those of the "
                                   "redirect URIs)."},
    "web_origins_from_redirect_uris": {"type": "boolean",
                                       "description": "No origins registered: the default."},
    "backchannel_logout_uri": {"type": ["string", "null"],
                               "description": "Where logout tokens are POSTed when a session "
                                              "the app got tokens in ends."},
    "created_at": DATE_TIME,
}
EVENT_PROPS = {
    "id": {"type": "integer"},
    "name": {"type": "string"},
    "user_id": {"type": ["integer", "null"]},
    "actor_id": {"type": ["integer", "null"], "description": "The administrator who acted."},
    "client_id": {"type": ["string", "null"]},
    "ip": {"type": ["string", "null"]},
    "data": {"type": "object"},
    "created_at": DATE_TIME,
}


def _object(props: dict, *, required=None, closed: bool = False) -> dict:
    schema = {"type": "object", "properties": props,
              "required": list(props) if required is None else required}
    if closed:
        schema["additionalProperties"] = False
    return schema


def _page(item: str) -> dict:
    return _object({"items": {"type": "array", "items": _ref(item)},
                    "next_cursor": {"type": ["string", "null"]}})


COMPONENTS = {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                   "description": "An access token with scope admin."}},
    "schemas": {
        "Problem": _object({"type": {"type": "string"}, "title": {"type": "string"},
                            "status": {"type": "integer"}, "detail": {"type": "string"},
                            "errors": {"type": "array", "items": {"type": "object"}}},
                           required=["type", "title", "status"]),
        "UserSummary": _object(USER_SUMMARY_PROPS),
        "User": _object(USER_PROPS),
        "UserPage": _page("UserSummary"),
        "UserCreate": _object({
            "username": {"type": "string", "minLength": 1, "maxLength": 150,
                         "pattern": "^[A-Za-z0-9][A-Za-z0-9._@+-]{0,149}$"},
            "email": {"type": "string", "format": "email", "maxLength": 320},
            "name": {"type": "string", "maxLength": 200},
            "admin": {"type": "boolean", "default": False},
        }, required=["username", "email"], closed=True),
        "Client": _object(CLIENT_PROPS),
        "WebOrigins": _object({"web_origins": {"oneOf": [WEB_ORIGINS, {
            "type": "null", "description": "Back to the default: the redirect URIs' origins."}]}},
            closed=True),
        "BackchannelLogoutUri": _object({
            "backchannel_logout_uri": {"type": ["string", "null"], "maxLength": 320,
                                       "description": "https (or http on 127.0.0.1), no "
                                                      "fragment; null removes it."},
        }, closed=True),
        "Passkey": _object({
            "id": {"type": "integer"}, "name": {"type": "string"},
            "second_step": {"type": "boolean",
                            "description": "Offered as the second step after the password; "
                                           "removed by Reset two-step sign-in."},
            "backed_up": {"type": "boolean", "description": "Synced between devices."},
            "transports": {"type": "array", "items": {"type": "string"}},
            "created_at": {"type": "string", "format": "date-time"},
            "last_used_at": {"type": ["string", "null"], "format": "date-time"}}),
        "PasskeyList": _object({"items": {"type": "array", "items": _ref("Passkey")}}),
        "Upstream": _object({
            "name": {"type": "string"}, "issuer": {"type": "string"},
            "client_id": {"type": "string"}, "label": {"type": "string"},
            "domains": {"type": "array", "items": {"type": "string"}},
            "create_users": {"type": "boolean"},
            "redirect_uri": {"type": "string", "description": "To register at the provider."},
        }),
        "UpstreamList": _object({"items": {"type": "array", "items": _ref("Upstream")}}),
        "Identity": _object({
            "upstream": {"type": "string"},
            "subject": {"type": "string", "description": "sub (Entra ID: TID:OID)."},
            "email": {"type": ["string", "null"], "description": "As last seen; display only."},
            "created_at": DATE_TIME, "last_used_at": NULLABLE_DATE_TIME,
        }),
        "IdentityList": _object({"items": {"type": "array", "items": _ref("Identity")}}),
        "IdentityLink": _object({"subject": {"type": "string", "minLength": 1,
                                             "maxLength": 255}}, closed=True),
        "Event": _object(EVENT_PROPS),
        "EventPage": _page("Event"),
    },
}

UPSTREAM = {"name": "upstream", "in": "path", "required": True,
            "description": "The upstream's NAME.",
            "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"}}
USERS = "/api/admin/users"
USER = USERS + "/{id}"
CLIENT = "/api/admin/clients/{client_id}"
PATHS = {
    "/api/openapi.json": {"get": {
        **_op("This document", "getOpenAPI", {"200": _json({"type": "object"}, "OpenAPI 3.1")}),
        "security": []}},
    USERS: {
        "get": _op("Search users (user name, email, display name; partial, any case)",
                   "listUsers", {"200": _json(_ref("UserPage"), "One page of users."),
                                 **_problems(401, 403, 422)},
                   parameters=[_query("q", {"type": "string"},
                                      "Part of a user name, email address or display name, "
                                      "any case; 1 or 2 characters match their beginning. "
                                      "Users come in the order their accounts were created."),
                               CURSOR, LIMIT]),
        "post": _op("Create a user and email them a temporary password (an invitation)",
                    "createUser", {"201": _json(_ref("User"), "Created and invited."),
                                   **_problems(400, 401, 403, 409, 415, 422)},
                    body=_ref("UserCreate")),
    },
    USER: {"get": _op("One user", "getUser", {"200": _json(_ref("User"), "The user."),
                                              **_problems(401, 403, 404)},
                      parameters=[_user_id()])},
    USER + "/reset-password": {"post": _user_action(
        "Reset: the user must choose a new password; a code is emailed at once",
        "resetPassword", "202", 409)},
    USER + "/temporary-password": {"post": _user_action(
        "Email the user a generated temporary password, valid 7 days", "sendTemporaryPassword",
        "202", 409)},
    USER + "/disable": {"post": _user_action("Disable the account and end its sessions",
                                             "disableUser", "200", 409)},
    USER + "/enable": {"post": _user_action("Enable a disabled account", "enableUser", "200",
                                            409)},
    USER + "/reset-mfa": {"post": _user_action(
        "Reset two-step sign-in: remove the authenticator app, the recovery codes and the "
        "passkeys used as a second step, end every session and sign-in in progress, email "
        "the user", "resetMfa", "200", 409)},
    USER + "/passkeys": {"get": _op(
        "The user's passkeys (WebAuthn credentials), oldest first", "listPasskeys",
        {"200": _json(_ref("PasskeyList"), "The passkeys."), **_problems(401, 403, 404)},
        parameters=[_user_id()])},
    USER + "/passkeys/{passkey_id}": {"delete": _no_content(
        "Remove one of the user's passkeys (the user is emailed)", "removePasskey",
        [_user_id(), {"name": "passkey_id", "in": "path", "required": True,
                      "description": "The passkey's id.",
                      "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}])},
    USER + "/sessions": {"delete": _no_content(
        "End every session and refresh token of the user", "revokeSessions", [_user_id()])},
    USER + "/licences/{client_id}": {
        "put": _no_content("Grant a licence for an application", "grantLicence",
                           [_user_id(), _client_id()]),
        "delete": _no_content("Remove a licence for an application", "removeLicence",
                              [_user_id(), _client_id()]),
    },
    CLIENT: {"get": _op("One application and its web origins", "getClient",
                        {"200": _json(_ref("Client"), "The application."),
                         **_problems(401, 403, 404)}, parameters=[_client_id()])},
    CLIENT + "/web-origins": {"put": _op(
        "Set the origins whose pages may call /token, /userinfo and /revoke (CORS)",
        "setWebOrigins", {"200": _json(_ref("Client"), "The application after the change."),
                          **_problems(400, 401, 403, 404, 415, 422)},
        parameters=[_client_id()], body=_ref("WebOrigins"))},
    CLIENT + "/backchannel-logout-uri": {"put": _op(
        "Set where logout tokens are POSTed when a session the app got tokens in ends",
        "setBackchannelLogoutUri",
        {"200": _json(_ref("Client"), "The application after the change."),
         **_problems(400, 401, 403, 404, 415, 422)},
        parameters=[_client_id()], body=_ref("BackchannelLogoutUri"))},
    "/api/admin/upstreams": {"get": _op(
        "Upstream OpenID providers (never their client secret)", "listUpstreams",
        {"200": _json(_ref("UpstreamList"), "Every upstream."), **_problems(401, 403)})},
    USER + "/identities": {"get": _op(
        "The user's linked upstream identities", "listIdentities",
        {"200": _json(_ref("IdentityList"), "Every linked identity."),
         **_problems(401, 403, 404)}, parameters=[_user_id()])},
    USER + "/identities/{upstream}": {
        "put": _op("Link an upstream identity to the user", "linkIdentity",
                   {"200": _json(_ref("Identity"), "Linked."),
                    **_problems(400, 401, 403, 404, 409, 415, 422)},
                   parameters=[_user_id(), UPSTREAM], body=_ref("IdentityLink")),
        "delete": _no_content("Unlink the user's identity at an upstream", "unlinkIdentity",
                              [_user_id(), UPSTREAM]),
    },
    "/api/admin/events": {"get": _op(
        "Security events, newest first", "listEvents",
        {"200": _json(_ref("EventPage"), "One page of events."), **_problems(401, 403, 422)},
        parameters=[_query("user_id", {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                           "Only this user's events."), CURSOR, LIMIT])},
}

OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "Authserver admin API", "version": "1",
             "description": "Users, account states, licences, applications' web origins, "
                            "upstream providers and linked identities, and security events. "
                            "Errors "
                            "are RFC 9457 problem details."},
    "security": [{"bearer": []}],
    "paths": PATHS,
    "components": COMPONENTS,
}
