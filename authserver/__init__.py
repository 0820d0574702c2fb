"""Authserver: a standalone OAuth 2.0 / OpenID Connect identity provider."""
from .app import create_app

__all__ = ["create_app"]
