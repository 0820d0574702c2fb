"""The one bearer-token check (RFC 6750) for /userinfo and the admin API: Authlib's
ResourceProtector with a validator that asks tokens.liveness whether the token is alive."""
from __future__ import annotations

from authlib.oauth2.rfc6749 import ResourceProtector
from authlib.oauth2.rfc6749.errors import MissingAuthorizationError
from authlib.oauth2.rfc6750 import BearerTokenValidator

from .. import clock
from ..tokens.jwt_access import AccessTokenInvalid, decode_access_token
from ..tokens.liveness import Liveness, access_token_liveness
from . import services

REALM = "authserver"


class AccessToken(dict):
    """Verified access-token claims with their liveness, shaped like Authlib's TokenMixin."""

    def __init__(self, claims: dict, client, liveness: Liveness | None = None):
        super().__init__(claims)
        self.client = client
        self.liveness = liveness
        self.user = liveness.user if liveness else None

    def check_client(self, client) -> bool:
        return self.get("client_id") == client.get_client_id()

    def get_scope(self) -> str:
        return str(self.get("scope") or "")

    def is_expired(self) -> bool:
        return self["exp"] <= clock.timestamp()

    def is_revoked(self) -> bool:
        """Dead for any reason other than expiry (tokens.liveness), including a revoked jti."""
        return self.liveness is None or not self.liveness.alive


def load_access_token(token_string: str, fresh_client: bool = False) -> AccessToken | None:
    """One of our access tokens with its verdict, or None when it is not ours or not valid.

    fresh_client reads the client from the database rather than the per-process cache
    (CLIENT_CACHE_TTL), so a withdrawn scope takes effect at once (the admin API).
    """
    try:
        claims = decode_access_token(token_string)
    except AccessTokenInvalid:
        return None
    find = services.query_client if fresh_client else services.query_client_cached
    client = find(claims.get("client_id"))
    return AccessToken(claims, client, access_token_liveness(claims, client))


class AccessTokenValidator(BearerTokenValidator):
    fresh_client = False

    def authenticate_token(self, token_string):
        return load_access_token(token_string.strip(), self.fresh_client)


class FreshClientValidator(AccessTokenValidator):
    fresh_client = True


class BearerProtector(ResourceProtector):
    """Authlib's protector; with form_token, also the form-encoded body parameter
    `access_token` (RFC 6750 section 2.2) when there is no Authorization header."""

    def parse_request_authorization(self, request, form_token: bool = False):
        if form_token and not request.headers.get("Authorization") \
                and request.method == "POST" \
                and request.mimetype == "application/x-www-form-urlencoded":
            token = request.form.get("access_token", "")
            if not token.strip():
                raise MissingAuthorizationError(self._default_auth_type, self._default_realm)
            return self.get_token_validator("bearer"), token
        return super().parse_request_authorization(request)

    def validate_request(self, scopes, request, form_token: bool = False):
        """Authlib's validate_request, reading the token as parse_request_authorization says.
        Raises Authlib's OAuth2Error subclasses (status, error, headers per RFC 6750 3.1)."""
        validator, token_string = self.parse_request_authorization(request, form_token)
        validator.validate_request(request)
        token = validator.authenticate_token(token_string)
        validator.validate_token(token, scopes, request)
        return token


protector = BearerProtector()
protector.register_token_validator(AccessTokenValidator(realm=REALM))
fresh_protector = BearerProtector()
fresh_protector.register_token_validator(FreshClientValidator(realm=REALM))


def verify_bearer(request, scopes: list[str] | None = None, *, form_token: bool = False,
                  fresh_client: bool = False) -> AccessToken:
    """The request's live access token with the scopes asked for, or an OAuth2Error."""
    chosen = fresh_protector if fresh_client else protector
    return chosen.validate_request(scopes, request, form_token=form_token)


def rejection(error) -> tuple[str | None, int]:
    """(RFC 6750 section 3.1 error code, HTTP status) for an error verify_bearer raised: no
    code when the request carried no usable bearer token at all."""
    if error.error in ("invalid_token", "insufficient_scope"):
        return error.error, (403 if error.error == "insufficient_scope" else 401)
    return None, 401
