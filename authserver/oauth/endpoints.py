"""RFC 7009 revocation and RFC 7662 introspection over our two token kinds."""
from __future__ import annotations

from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc7009 import RevocationEndpoint as _Revocation
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _Introspection

from ..extensions import db
from ..tokens import services as tokens
from ..tokens.liveness import refresh_token_liveness
from ..tokens.models import RefreshToken
from . import services
from .bearer import load_access_token

CLIENT_AUTH = ["client_secret_basic", "client_secret_post", "none"]


def query_any_token(token_string: str, hint: str | None):
    """A refresh token row or one of our access tokens (bearer.AccessToken, with its verdict),
    trying the hinted kind first."""
    kinds = ["refresh_token", "access_token"]
    if hint == "access_token":
        kinds.reverse()
    for kind in kinds:
        if kind == "refresh_token":
            row = tokens.find_refresh_token(token_string)
            if row is not None:
                return row
        else:
            token = load_access_token(token_string)
            if token is not None:
                return token
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
        """RFC 7662 section 2.2: active exactly when the server would accept the token
        (tokens.liveness): user active, session live, licence held, code not replayed."""
        if isinstance(token, RefreshToken):
            client = services.query_client_cached(token.client_id)
            if not refresh_token_liveness(token, client).alive:
                return {"active": False}
            user = token.user
            return {"active": True, "token_type": "refresh_token", "client_id": token.client_id,
                    "scope": token.scope, "sub": user.sub if user else None,
                    "exp": int(token.family_expires_at.timestamp()),
                    "iat": int(token.created_at.timestamp())}
        return {"active": True, "token_type": "Bearer", "client_id": token["client_id"],
                "scope": token.get("scope", ""), "sub": token["sub"], "aud": token.get("aud"),
                "iss": token["iss"], "exp": token["exp"], "iat": token["iat"],
                "jti": token["jti"]}
