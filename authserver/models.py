"""Every model, imported once so Alembic and the mapper see the whole schema."""
from .accounts.models import BrowserSession, Licence, LoginThrottle, User
from .audit import SecurityEvent
from .mail.models import OutboxMessage
from .oauth.models import AuthorizationCode, Client, Consent
from .passwords.models import CodeSend, ResetCode
from .tokens.models import RefreshToken, RevokedAccessToken

__all__ = ["AuthorizationCode", "BrowserSession", "Client", "CodeSend", "Consent", "Licence",
           "LoginThrottle", "OutboxMessage", "RefreshToken", "ResetCode", "RevokedAccessToken",
           "SecurityEvent", "User"]
