"""Browser-like steps through the forgot-password pages, and where to read the codes."""
from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlencode, urlsplit

from sqlalchemy import select

from authserver.extensions import db
from authserver.mail import sender
from authserver.mail.models import OutboxMessage
from support import csrf_from

NEW_PASSWORD = "a brand new passphrase"
# What the confirm page says about a code (SPEC 2); one copy for every test that reads it.
NOT_VALID = "This code is not valid. Check it, or ask for a new one."
DEAD = "Too many wrong tries on this code. Ask for a new code."
CODE_LINE = re.compile(r"^(\d{6})$", re.MULTILINE)


class ResetActions:
    """Send code, Resend code and Submit, each with a fresh CSRF token like a browser."""

    def __init__(self, client) -> None:
        self.client = client

    def send_code(self, username: str):
        token = csrf_from(self.client.get("/forgot-password").get_data(as_text=True))
        return self.client.post("/forgot-password", data={"username": username,
                                                          "csrf_token": token})

    def resend(self, username: str):
        token = self._confirm_csrf(username)
        return self.client.post("/forgot-password/resend", data={"username": username,
                                                                 "csrf_token": token})

    def confirm(self, username: str, code: str, password: str = NEW_PASSWORD,
                password_confirm: str | None = None):
        token = self._confirm_csrf(username)
        return self.client.post("/forgot-password/confirm", data={
            "username": username, "code": code, "password": password,
            "password_confirm": password if password_confirm is None else password_confirm,
            "csrf_token": token})

    def _confirm_csrf(self, username: str) -> str:
        page = self.client.get("/forgot-password/confirm?" + urlencode({"username": username}))
        return csrf_from(page.get_data(as_text=True))


def confirm_target(location: str) -> tuple[str, dict]:
    """(path, query) of a redirect, so quoting differences do not matter."""
    parts = urlsplit(location)
    return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}


def goes_to_confirm(resp, username: str) -> bool:
    """A 303 to the confirm page with the typed name filled in (SPEC 7)."""
    return resp.status_code == 303 and confirm_target(resp.headers["Location"]) == (
        "/forgot-password/confirm", {"username": username})


def queued(app, kind: str | None = None, to: str | None = None) -> list[OutboxMessage]:
    """Outbox rows, oldest first (sent or not)."""
    with app.app_context():
        stmt = select(OutboxMessage).order_by(OutboxMessage.id)
        if kind:
            stmt = stmt.where(OutboxMessage.kind == kind)
        if to:
            stmt = stmt.where(OutboxMessage.to == to)
        rows = list(db.session.scalars(stmt))
        db.session.expunge_all()
        return rows


def last_code(app, to: str = "alice@example.com") -> str:
    """The code in the newest reset_code message for `to`, read from the outbox before delivery."""
    rows = queued(app, "reset_code", to)
    assert rows, f"no reset_code message for {to}"
    match = CODE_LINE.search(rows[-1].text)
    assert match, "the code is not on a line of its own"
    return match.group(1)


def deliver(app) -> int:
    """Run one sender pass with the app's configured transport."""
    return sender.deliver_due(app, app.extensions[sender.TRANSPORT_EXT])


def flashes(page: str) -> list[str]:
    """The flashed messages on a page, unescaped."""
    return [html.unescape(m) for m in
            re.findall(r'<p class="flash[^"]*" role="status">([^<]*)</p>', page)]


def errors(page: str) -> list[str]:
    """The form errors on a page, unescaped."""
    return [html.unescape(m) for m in re.findall(r'<p class="error[^"]*"[^>]*>([^<]*)</p>', page)]
