"""Every model, imported once so Alembic and the mapper see the whole schema."""
from .accounts.models import (BrowserSession, Licence, LoginThrottle, Upstream, UpstreamIdentity,
                              UpstreamLogin, User)
from .audit import SecurityEvent
from .mail.models import OutboxMessage
from .oauth.models import AuthorizationCode, Client, Consent
from .passwords.models import CodeSend, ResetCode
from .tokens.models import KeySetState, RefreshToken, RevokedAccessToken, SigningKey

__all__ = ["AuthorizationCode", "BrowserSession", "Client", "CodeSend", "Consent", "KeySetState",
           "Licence", "LoginThrottle", "OutboxMessage", "RefreshToken", "ResetCode",
           "RevokedAccessToken", "SecurityEvent", "SigningKey", "Upstream", "UpstreamIdentity",
           "UpstreamLogin", "User"]
