"""The admin API's request parsing: cursors and the UserCreate body."""
import pytest

from authserver.admin import payloads


def decode(app, cursor, kind="users", expected=str):
    with app.test_request_context("/", query_string={"cursor": cursor}):
        return payloads.decode_cursor(kind, expected)


def test_cursor_round_trips_and_is_opaque(app):
    cursor = payloads.encode_cursor("users", "alice")
    assert "alice" not in cursor
    assert decode(app, cursor) == "alice"
    assert decode(app, payloads.encode_cursor("events", 42), "events", int) == 42


def test_no_more_pages_has_no_cursor():
    assert payloads.encode_cursor("users", None) is None


@pytest.mark.parametrize("cursor", [
    "garbage", "!!!", "x" * 500, payloads.encode_cursor("events", 1),
    payloads.encode_cursor("users", 5), payloads.encode_cursor("users", "a\x00b"),
    payloads.encode_cursor("users", ["a"])])
def test_foreign_or_broken_cursors_are_refused(app, cursor):
    with pytest.raises(payloads.PayloadInvalid):
        decode(app, cursor)


@pytest.mark.parametrize("value", [0, -1, 2**31, 10**30, True])
def test_event_cursor_outside_the_id_range_is_refused(app, value):
    with pytest.raises(payloads.PayloadInvalid):
        decode(app, payloads.encode_cursor("events", value), "events", int)


def test_create_body_defaults():
    assert payloads.parse_create_user({"username": "a", "email": "a@example.com"}) == {
        "username": "a", "email": "a@example.com", "name": "", "admin": False}


def test_create_body_reports_every_problem_field_by_field():
    with pytest.raises(payloads.PayloadInvalid) as err:
        payloads.parse_create_user({"username": 1, "name": "x" * 201, "admin": 1, "zzz": 0})
    fields = sorted(e["field"] for e in err.value.errors)
    assert fields == ["admin", "email", "name", "username", "zzz"]


@pytest.mark.parametrize("raw", ["1", "20", "100"])
def test_limit_within_range(app, raw):
    with app.test_request_context("/", query_string={"limit": raw}):
        assert payloads.query_limit() == int(raw)


@pytest.mark.parametrize("raw", ["", "0", "101", "1.5", "-3", "１", "99999999999"])
def test_limit_outside_range_is_refused(app, raw):
    with app.test_request_context("/", query_string={"limit": raw}):
        with pytest.raises(payloads.PayloadInvalid):
            payloads.query_limit()
