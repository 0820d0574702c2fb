"""No enumeration (SPEC 1 story 4, 4, 7): /forgot-password and its confirm page answer the same
for an existing, a missing, a disabled and a temporary-password account; only the mail differs."""
from __future__ import annotations

import re
import statistics
import time
from urllib.parse import quote, quote_plus

import pytest

from authserver.accounts.states import AccountState
from support import assert_medians_alike, csrf_from, make_user
from reset_steps import ResetActions, deliver, last_code
from smtp_sink import parts, smtp_server, start_smtp  # noqa: F401  (fixtures)

CANNOT = "User password cannot be reset in the current state."
KINDS = {"active": None, "missing": "missing", "disabled": AccountState.DISABLED.value,
         "temporary": AccountState.FORCE_CHANGE_PASSWORD.value}
VOLATILE_HEADERS = {"Set-Cookie", "X-Request-Id", "Content-Length", "Location", "Date"}
CSRF_VALUE = re.compile(r'(name="csrf_token" type="hidden" value=")[^"]+"')


@pytest.fixture
def app(smtp_server, app):
    """Mail goes to a real SMTP sink, so the test reads what each address really received."""
    return app


def accounts(app, suffix: str = "") -> dict[str, str]:
    """One typed name per kind of account, all of the same length and found nowhere else on
    the page (so scrub() can blank it); returns kind -> name."""
    names = {}
    for kind, state in KINDS.items():
        name = f"zq{kind[:3]}{suffix}"
        if state != "missing":
            make_user(app, name, state=state)
        names[kind] = name
    return names


def scrub(text: str, name: str) -> str:
    """Blank out what may differ: the CSRF token and the echoed name (raw or URL-quoted)."""
    text = CSRF_VALUE.sub(r'\1CSRF"', text)
    for form in {quote_plus(name), quote(name, safe=""), name}:
        text = text.replace(form, "NAME")
    return text


def answer(client, name: str) -> dict:
    """What a browser sees for Send code: the 303 itself, then the page it leads to."""
    resp = ResetActions(client).send_code(name)
    page = client.get(resp.headers["Location"])
    return {
        "status": resp.status_code,
        "location": scrub(resp.headers["Location"], name),
        "headers": sorted((k, v) for k, v in resp.headers.items() if k not in VOLATILE_HEADERS),
        "body": scrub(resp.get_data(as_text=True), name),
        "page_status": page.status_code,
        "page": scrub(page.get_data(as_text=True), name),
    }


def test_send_code_answers_the_same_for_every_kind_of_account(app):
    names = accounts(app)
    answers = {kind: answer(app.test_client(), name) for kind, name in names.items()}
    assert answers["active"]["status"] == 303
    assert answers["active"]["location"] == "/forgot-password/confirm?username=NAME"
    for kind in ("missing", "disabled", "temporary"):
        assert answers[kind] == answers["active"], kind


def test_the_mail_is_what_differs(app, smtp_server):
    names = accounts(app)
    for name in names.values():
        ResetActions(app.test_client()).send_code(name)
    assert deliver(app) == 3
    inbox = smtp_server.inbox
    assert "Your verification code" in inbox.to("zqact@example.com")[0]["Subject"]
    assert inbox.to("zqmis@example.com") == []
    for kind in ("disabled", "temporary"):
        (mail,) = inbox.to(f"{names[kind]}@example.com")
        body = parts(mail)
        assert CANNOT in body["text/plain"].splitlines()
        assert CANNOT in body["text/html"]
        assert "administrator" in body["text/plain"] and not re.search(r"^\d{6}$",
                                                                       body["text/plain"], re.M)


def confirm_answers(app, names: dict[str, str], tries: int = 7) -> dict[str, list]:
    """Send code, then `tries` wrong codes on the confirm page; what each try shows."""
    seen: dict[str, list] = {}
    for kind, name in names.items():
        client = app.test_client()
        steps = ResetActions(client)
        steps.send_code(name)
        bad = "000000"
        if kind == "active":
            bad = "000001" if last_code(app, f"{name}@example.com") == "000000" else "000000"
        seen[kind] = []
        for _ in range(tries):
            resp = steps.confirm(name, bad)
            seen[kind].append((resp.status_code, scrub(resp.get_data(as_text=True), name)))
    return seen


def test_wrong_codes_answer_the_same_for_every_kind_of_account(app):
    seen = confirm_answers(app, accounts(app))
    assert "Too many wrong tries" in seen["active"][4][1]
    for kind in ("missing", "disabled", "temporary"):
        for i, (mine, theirs) in enumerate(zip(seen[kind], seen["active"])):
            assert mine == theirs, f"{kind}, try {i + 1}"


def test_wrong_codes_without_any_send_answer_the_same(app):
    names = accounts(app)
    seen = {}
    for kind, name in names.items():
        steps = ResetActions(app.test_client())
        seen[kind] = [scrub(steps.confirm(name, "123456").get_data(as_text=True), name)
                      for _ in range(6)]
    for kind in ("missing", "disabled", "temporary"):
        assert seen[kind] == seen["active"], kind


def test_a_password_equal_to_the_account_email_is_judged_only_with_the_right_code(app):
    """Otherwise the policy message would confirm a guessed email for a user name."""
    make_user(app, "alice")
    steps = ResetActions(app.test_client())
    steps.send_code("alice")
    wrong = steps.confirm("alice", "999999" if last_code(app) != "999999" else "999998",
                          password="alice@example.com")
    assert "cannot be your user name or email" not in wrong.get_data(as_text=True)
    right = steps.confirm("alice", last_code(app), password="alice@example.com")
    assert right.status_code == 200
    assert "cannot be your user name or email" in right.get_data(as_text=True)
    assert steps.confirm("alice", last_code(app)).status_code == 303  # the code was not spent


def _timed_post(client, name: str) -> float:
    """Seconds for one Send code, the CSRF token fetched beforehand like a browser would."""
    csrf = csrf_from(client.get("/forgot-password").get_data(as_text=True))
    started = time.perf_counter()
    resp = client.post("/forgot-password", data={"username": name, "csrf_token": csrf})
    elapsed = time.perf_counter() - started
    assert resp.status_code == 303
    return elapsed


def test_send_code_takes_comparable_time_for_every_kind_of_account(app, capsys):
    """SPEC 7's rule, measured: the medians of 15 requests per kind (fresh names each time, so
    no resend limit applies) are within 30 % or 25 ms of each other, whichever is wider."""
    rounds = [accounts(app, f"{i:02d}") for i in range(15)]
    clients = {kind: app.test_client() for kind in KINDS}
    for kind in KINDS:  # warm-up: templates, hasher, first connection
        _timed_post(clients[kind], f"warm{kind}")
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for names in rounds:
        for kind, name in names.items():
            times[kind].append(_timed_post(clients[kind], name))
    medians = {kind: statistics.median(values) * 1000 for kind, values in times.items()}
    with capsys.disabled():
        print("\n/forgot-password median ms over 15: " +
              ", ".join(f"{kind} {ms:.2f}" for kind, ms in medians.items()))
    assert_medians_alike(medians)
