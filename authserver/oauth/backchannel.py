"""OpenID Connect Back-Channel Logout 1.0: tell each app when a session it got tokens in ends.

A subscriber of accounts.sessions.end_sessions (every way a session ends: logout, Sign out
everywhere, a password reset or change, an administrator's action, refresh-token reuse, the 30
days running out) queues one outbox row per (session, client with a back-channel logout URI),
in the caller's transaction: the rows commit with the ending or not at all. The outbox sender
(mail/sender.py: claims with a lease, retries with a capped backoff, any number of processes)
hands rows of this kind to `LogoutDelivery`, which signs the logout token at delivery time (so
a token delivered after an outage is fresh) and POSTs it. A delivery that finally fails
records a security event, which also counts in the metrics.
"""
from __future__ import annotations

import json
from datetime import datetime

from flask import Flask, current_app
from joserfc import jwt
from sqlalchemy import select

from .. import clock, security
from ..accounts import sessions
from ..accounts.models import BrowserSession, User
from ..audit import security_event
from ..extensions import db
from ..mail.messages import Draft
from ..mail.models import OutboxMessage
from ..mail.outbox import queue
from ..mail.transports import register_kind
from ..outbound import http_session
from ..tokens import keyring
from .models import Client, SessionClient

KIND = "backchannel_logout"
EVENT = "http://schemas.openid.net/event/backchannel-logout"
TOKEN_TTL = 120


def init_app(app: Flask) -> None:
    """Subscribe to session endings and deliver this kind of outbox row."""
    sessions.on_session_end(app, queue_logout_tokens)
    register_kind(app, KIND, LogoutDelivery(app))


def queue_logout_tokens(ended: list[sessions.EndedSession], now: datetime) -> None:
    """Session-end subscriber: one outbox row per (ended session, client with a URI)."""
    result = db.session.execute(
        select(SessionClient.session_id, Client.client_id, Client.backchannel_logout_uri,
               Client.id_token_alg, BrowserSession.public_sid, User.sub)
        .join(Client, Client.client_id == SessionClient.client_id)
        .join(BrowserSession, BrowserSession.id == SessionClient.session_id)
        .join(User, User.id == BrowserSession.user_id)
        .where(SessionClient.session_id.in_([e.id for e in ended]),
               Client.backchannel_logout_uri.is_not(None))
        .order_by(SessionClient.id))
    reasons = {e.id: e.reason for e in ended}
    for row in result:
        claims = {"aud": row.client_id, "sub": row.sub, "sid": row.public_sid,
                  "jti": security.random_token(16), "alg": row.id_token_alg,
                  "reason": reasons[row.session_id]}
        queue(Draft(to=row.backchannel_logout_uri, subject=f"logout {row.client_id}"[:300],
                    text=json.dumps(claims), html="", kind=KIND))


def logout_token(claims: dict, now: datetime) -> str:
    """The logout token (section 2.4): signed with the issuer's ID-token key for the client's
    alg, `typ: logout+jwt`, the event, `sid` and `sub`, never a `nonce`."""
    alg = claims.get("alg") or "RS256"
    key = keyring.current_keyring().signing_key(alg, now)
    iat = int(now.timestamp())
    payload = {"iss": current_app.config["ISSUER"], "aud": claims["aud"], "iat": iat,
               "exp": iat + TOKEN_TTL, "jti": claims["jti"], "sub": claims["sub"],
               "sid": claims["sid"], "events": {EVENT: {}}}
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "logout+jwt"}, payload, key,
                      algorithms=[alg])


class LogoutDelivery:
    """The outbox transport for this kind: POST logout_token (section 2.5); a 200 or 204 is
    delivered, anything else is a failed try that the sender retries with backoff."""

    def __init__(self, app: Flask):
        self.app = app

    def deliver(self, msg: OutboxMessage) -> None:
        token = logout_token(json.loads(msg.text), clock.now())
        with http_session(self.app.config) as http:
            resp = http.post(msg.to, data={"logout_token": token}, allow_redirects=False,
                             headers={"Cache-Control": "no-store"})
        if resp.status_code not in (200, 204):
            raise DeliveryRefused(f"HTTP {resp.status_code} from the back-channel logout URI")


    def gave_up(self, msg: OutboxMessage, attempts: int, error: str) -> None:
        """The last try failed: a security event (counted in /metrics) for the operator."""
        claims = json.loads(msg.text) if msg.text.startswith("{") else {}
        security_event("backchannel_logout_failed", client_id=claims.get("aud"),
                       message_id=msg.id, attempts=attempts, error=error[:200])


class DeliveryRefused(Exception):
    pass
