"""RFC 7009 revocation and RFC 7662 introspection over our two token kinds."""
from __future__ import annotations

from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc7009 import RevocationEndpoint as _Revocation
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _Introspection

from .. import clock
from ..accounts import services as accounts
from ..extensions import db
from ..tokens import services as tokens
from ..tokens.jwt_access import AccessTokenInvalid, decode_access_token
from ..tokens.models import RefreshToken

CLIENT_AUTH = ["client_secret_basic", "client_secret_post", "none"]


class AccessTokenClaims(dict):
    """A verified JWT access token, shaped like Authlib's TokenMixin."""

    def check_client(self, client) -> bool:
        return self.get("client_id") == client.get_client_id()

    def get_scope(self) -> str:
        return self.get("scope", "")

    def is_expired(self) -> bool:
        return self["exp"] <= clock.timestamp()

    def is_revoked(self) -> bool:
        return tokens.is_access_token_revoked(self["jti"])


def query_any_token(token_string: str, hint: str | None):
    """A refresh token row or verified access-token claims, trying the hinted kind first."""
    kinds = ["refresh_token", "access_token"]
    if hint == "access_token":
        kinds.reverse()
    for kind in kinds:
        if kind == "refresh_token":
            row = tokens.find_refresh_token(token_string)
            if row is not None:
                return row
        else:
            try:
                return AccessTokenClaims(decode_access_token(token_string))
            except AccessTokenInvalid:
                continue
    return None


def check_token_param(request) -> None:
    """Only `token` is required. An unknown token_type_hint is ignored (RFC 7009 section 2.1,
    RFC 7662 section 2.1) rather than Authlib's 401 without a WWW-Authenticate header."""
    if not request.form.get("token"):
        raise InvalidRequestError("Missing 'token'.")


class RevocationEndpoint(_Revocation):
    CLIENT_AUTH_METHODS = CLIENT_AUTH

    def check_params(self, request, client):
        check_token_param(request)

    def query_token(self, token_string, token_type_hint):
        return query_any_token(token_string, token_type_hint)

    def revoke_token(self, token, request):
        """A refresh token takes its family with it; an access token's jti is remembered."""
        if isinstance(token, RefreshToken):
            tokens.revoke_family(token.family_id)
        else:
            tokens.revoke_access_token(token["jti"], token["exp"])
        db.session.commit()


class IntrospectionEndpoint(_Introspection):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def check_params(self, request, client):
        check_token_param(request)

    def query_token(self, token_string, token_type_hint):
        return query_any_token(token_string, token_type_hint)

    def check_permission(self, token, client, request):
        """Confidential clients may introspect the tokens issued to them."""
        return not client.public and token.check_client(client)

    def introspect_token(self, token):
        if isinstance(token, RefreshToken):
            user = accounts.get_user(token.user_id)
            return {"active": True, "token_type": "refresh_token", "client_id": token.client_id,
                    "scope": token.scope, "sub": user.sub if user else None,
                    "exp": int(token.family_expires_at.timestamp()),
                    "iat": int(token.created_at.timestamp())}
        return {"active": True, "token_type": "Bearer", "client_id": token["client_id"],
                "scope": token.get("scope", ""), "sub": token["sub"], "aud": token.get("aud"),
                "iss": token["iss"], "exp": token["exp"], "iat": token["iat"],
                "jti": token["jti"]}
