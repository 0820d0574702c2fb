"""Authlib grants: hook methods only, each delegating to our services."""
from __future__ import annotations

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode as _OpenIDCode
from flask import current_app

from .. import clock, security
from ..accounts import services as accounts
from ..accounts.models import BrowserSession, User
from ..accounts.states import can_use_tokens
from ..extensions import db
from ..tokens import keyring
from ..tokens import services as tokens
from ..tokens.jwt_access import ACCESS_TOKENS
from ..tokens.lifetimes import id_token_ttl
from ..tokens.liveness import session_claim
from . import services
from .claims import userinfo_for

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
MAX_NONCE = 512


def new_authorization_code() -> str:
    """256 bits from secrets in one call (Authlib draws one character at a time)."""
    return security.random_token(32)


def _usable_user(user_id: int) -> User | None:
    """The user, if tokens may be issued to them (states.can_use_tokens: active accounts only)."""
    user = accounts.get_user(user_id)
    return user if can_use_tokens(user) else None


class SessionBoundTokens:
    """Access tokens name the browser session they were issued in (liveness.SESSION_CLAIM),
    so they die with it; Authlib's generate_token has no way to pass extra claims."""

    new_refresh_token: str | None = None  # drawn before it is stored (the refresh grant)

    def generate_token(self, user=None, scope=None, grant_type=None, expires_in=None,
                       include_refresh_token=True):
        return ACCESS_TOKENS(grant_type or self.GRANT_TYPE, self.request.client, user, scope,
                             expires_in, include_refresh_token, self.access_token_claims(),
                             refresh_token=self.new_refresh_token)

    def access_token_claims(self) -> dict:
        raise NotImplementedError


class AuthorizationCodeGrant(SessionBoundTokens, grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    AUTHORIZATION_CODE_LENGTH = 43

    def validate_authorization_request(self):
        """Authlib's checks, then a bound on the nonce, which is stored with the code and copied
        into the ID token (OIDC sets no length; real nonces are 16 to 64 characters).

        Once validate_consent_request has passed, the validated redirect URI is returned as
        is: create_authorization_response validates again, and the request is the same."""
        if self.redirect_uri is not None:
            return self.redirect_uri
        redirect_uri = super().validate_authorization_request()
        nonce = self.request.payload.data.get("nonce")
        if nonce and len(nonce) > MAX_NONCE:
            raise InvalidRequestError(f"nonce is longer than {MAX_NONCE} characters",
                                      redirect_uri=redirect_uri)
        return redirect_uri

    def generate_authorization_code(self):
        """The code drawn when the request was decided (decisions.IssueCode), so the loop
        guard can tell later whether it was redeemed."""
        return getattr(self.request, "issued_code", None) or new_authorization_code()

    def save_authorization_code(self, code, request):
        return services.save_authorization_code(
            code, client=request.client, user=request.user, session=request.browser_session,
            redirect_uri=request.payload.redirect_uri or "", scope=request.scope,
            nonce=request.payload.data.get("nonce"),
            challenge=request.payload.data.get("code_challenge"),
            method=request.payload.data.get("code_challenge_method"))

    def query_authorization_code(self, code, client):
        """Claim the code, recording the jti its access token will carry (a replay revokes
        it, RFC 6749 section 4.1.2)."""
        self.access_jti = security.random_token(16)
        return services.claim_authorization_code(code, client, access_jti=self.access_jti)

    def access_token_claims(self) -> dict:
        code = self.request.authorization_code
        return {"jti": self.access_jti, **session_claim(code.session_id)}

    def delete_authorization_code(self, authorization_code):
        """Already marked used when claimed; nothing to delete."""

    def authenticate_user(self, authorization_code):
        return _usable_user(authorization_code.user_id)

    def save_token(self, token):
        code = self.request.authorization_code
        if "refresh_token" in token:
            session = db.session.get(BrowserSession, code.session_id) \
                if code.session_id else None
            code.family_id = tokens.store_refresh_token(
                token["refresh_token"], client_id=code.client_id, user_id=code.user_id,
                scope=code.scope, session_id=code.session_id, auth_time=code.auth_time,
                amr=code.amr, family_id=None,
                family_expires_at=session.expires_at if session else clock.now())
        db.session.commit()


class RefreshTokenGrant(SessionBoundTokens, grants.RefreshTokenGrant):
    """Rotation in one statement (tokens.services.exchange_refresh_token): the presented
    token is rotated and its successor stored and committed while Authlib authenticates it,
    then the access token is signed. Authlib's order (validate, issue, save, revoke) and its
    checks are kept; tests/unit/oauth/test_authlib_pin.py fails if upstream changes them."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        """A live token (tokens.liveness: session, user state, licence) of the authenticated
        client, never of a client_id in the body, rotated; the requested scope is checked
        (Authlib's rule, RFC 6749 section 6) before the rotation commits."""
        self.new_refresh_token = security.random_token(32)
        return tokens.exchange_refresh_token(refresh_token, self.request.client,
                                             self.new_refresh_token,
                                             accept=self._validate_token_scope)

    def authenticate_user(self, refresh_token):
        """The user read with the token, found active by the liveness rule."""
        return refresh_token.user

    def access_token_claims(self) -> dict:
        return session_claim(self.request.refresh_token.session_id)

    def save_token(self, token):
        """Stored with the rotation (authenticate_refresh_token)."""

    def revoke_old_credential(self, refresh_token):
        """Rotated with the successor's insertion (authenticate_refresh_token)."""


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def save_token(self, token):
        """Access tokens are self-contained JWTs: nothing to store."""


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only; required for public clients and by per-client setting (RFC 7636)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256",
                                      redirect_uri=redirect_uri)
        if grant.request.client.require_pkce and not data.get("code_challenge"):
            raise InvalidRequestError("code_challenge (S256) is required for this client",
                                      redirect_uri=redirect_uri)
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant, result):
        code = grant.request.authorization_code
        if code.code_challenge is None and grant.request.client.require_pkce:
            raise InvalidRequestError("Missing 'code_challenge' for this client")
        super().validate_code_verifier(grant, result)


class OpenIDCode(_OpenIDCode):
    """ID tokens (OIDC Core 1.0 section 2) signed with the keyring's key for the client's alg."""

    def exists_nonce(self, nonce, request):
        return services.nonce_used(request.payload.client_id, nonce)

    def resolve_client_private_key(self, client):
        return keyring.current_keyring().signing_key(client.id_token_alg, clock.now())

    def get_encode_header(self, client):
        key = self.resolve_client_private_key(client)
        return {"alg": client.id_token_alg, "kid": key.kid, "typ": "JWT"}

    def get_client_claims(self, client):
        return {"iss": current_app.config["ISSUER"], "aud": [client.get_client_id()],
                "exp": clock.timestamp() + id_token_ttl(), "iat": clock.timestamp()}

    def get_authorization_code_claims(self, authorization_code):
        """Authlib's claims from the code, and `sid`: the session the code came from
        (OIDC Back-Channel Logout 1.0 section 2.4; logout tokens carry the same value)."""
        claims = super().get_authorization_code_claims(authorization_code)
        session = db.session.get(BrowserSession, authorization_code.session_id) \
            if authorization_code.session_id else None
        if session is not None and session.public_sid:
            claims["sid"] = session.public_sid
        return claims

    def generate_user_info(self, user, scope) -> UserInfo:
        return userinfo_for(user, scope)
