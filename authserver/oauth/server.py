"""Build one AuthorizationServer per app (never a mutated module global)."""
from __future__ import annotations

from authlib.integrations.flask_oauth2 import AuthorizationServer as _FlaskServer
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload, FlaskOAuth2Request
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidClientError, OAuth2Request
from authlib.oauth2.rfc6749.authenticate_client import authenticate_client_secret_basic
from authlib.oauth2.rfc6749.grants import BaseGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc9207 import IssuerParameter
from flask import Flask, current_app, request

from ..tokens.jwt_access import ACCESS_TOKENS
from . import client_limits, services
from .endpoints import IntrospectionEndpoint, RevocationEndpoint
from .grants import (AuthorizationCodeGrant, ClientCredentialsGrant, OpenIDCode,
                     RefreshTokenGrant, S256CodeChallenge)


class IssuerRequest(FlaskOAuth2Request):
    """The Flask request, with its URL taken from the configured issuer, not the Host header."""

    def __init__(self, req):
        OAuth2Request.__init__(self, req.method, _issuer_url(), headers=req.headers)
        self._request = req
        self.payload = FlaskOAuth2Payload(req)


class AuthorizationServer(_FlaskServer):
    def authenticate_client(self, request, methods, endpoint="token"):
        """Authlib's client authentication for every endpoint, inside the limits on failed
        client authentication (client_limits.py)."""
        client_limits.check_address(endpoint)
        try:
            client = super().authenticate_client(request, methods, endpoint)
        except InvalidClientError:
            client_limits.record_failure(request)
            raise
        client_limits.count_request(client.client_id)
        return client

    def create_oauth2_request(self, req):
        """A dict builds a synthetic authorization request (used by /refresh)."""
        if isinstance(req, dict):
            oauth_req = OAuth2Request("GET", _issuer_url(), headers=request.headers)
            oauth_req.payload = BasicOAuth2Payload(req)
            return oauth_req
        return IssuerRequest(request)


class Refusal(BaseGrant):
    """An error already decided (decisions.ErrorRedirect), answered by Authlib's
    create_authorization_response like a code, so the server's hooks run on errors too."""

    def __init__(self, request, server, error: OAuth2Error):
        super().__init__(request, server)
        self.error = error

    def validate_authorization_request(self):
        return self.error.redirect_uri

    def create_authorization_response(self, redirect_uri, grant_user):
        raise self.error


class Issuer(IssuerParameter):
    """RFC 9207: `iss` in every authorization response, codes and errors alike."""

    def get_issuer(self) -> str:
        return current_app.config["ISSUER"]


def _issuer_url() -> str:
    return current_app.config["ISSUER"] + request.full_path


def build_server(app: Flask) -> AuthorizationServer:
    """Register our grants, endpoints and JWT generator on a new server stored in the app."""
    server = AuthorizationServer()
    server.init_app(app, query_client=services.query_client_cached, save_token=_no_save)
    server.register_token_generator("default", ACCESS_TOKENS)
    server.register_client_auth_method("client_secret_basic", _client_secret_basic)
    server.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True),
                                                   OpenIDCode(require_nonce=False)])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(RevocationEndpoint)
    server.register_endpoint(IntrospectionEndpoint)
    server.register_extension(Issuer())
    app.extensions["authserver.oauth_server"] = server
    return server


def _client_secret_basic(query_client, request):
    """Authlib's client_secret_basic, reading undecodable (non-UTF-8) credentials as none,
    so they end in 401 invalid_client instead of a 500 (Authlib lets UnicodeDecodeError out)."""
    try:
        return authenticate_client_secret_basic(query_client, request)
    except UnicodeDecodeError:
        return None


def _no_save(token, request):
    """Each grant saves its own tokens (see grants.py)."""


def current_server() -> AuthorizationServer:
    return current_app.extensions["authserver.oauth_server"]
