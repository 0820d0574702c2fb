"""After 5 failures in a row a typed name is throttled with growing delays, whether or not
an account exists for it, and the answer never tells which."""
from datetime import timedelta

from support import PASSWORD, make_user


def _fail(auth, name, times):
    for _ in range(times):
        resp = auth.login(name, "wrong password!")
        assert resp.status_code == 200


def test_sixth_try_is_throttled_even_with_the_right_password(app, auth, frozen):
    make_user(app, "alice")
    _fail(auth, "alice", 5)
    resp = auth.login("alice", PASSWORD)
    assert resp.status_code == 200
    assert "Too many failed attempts" in resp.get_data(as_text=True)


def test_throttle_answers_the_same_for_a_name_without_an_account(app, auth, frozen):
    make_user(app, "alice")
    _fail(auth, "alice", 6)
    _fail(auth, "nobody", 6)
    known = auth.login("alice", "x" * 10).get_data(as_text=True)
    unknown = auth.login("nobody", "x" * 10).get_data(as_text=True)
    strip = lambda html, name: html.replace(name, "NAME").split('name="csrf_token"')[0]  # noqa: E731
    assert "Too many failed attempts" in known
    assert strip(known, "alice") == strip(unknown, "nobody")


def test_delay_grows_then_a_correct_password_clears_the_count(app, auth, frozen):
    make_user(app, "alice")
    _fail(auth, "alice", 5)          # 5th failure locks for 2 s
    frozen.tick(timedelta(seconds=3))
    _fail(auth, "alice", 1)          # 6th failure locks for 4 s
    frozen.tick(timedelta(seconds=3))
    assert "Too many failed attempts" in auth.login("alice", PASSWORD).get_data(as_text=True)
    frozen.tick(timedelta(seconds=2))
    resp = auth.login("alice", PASSWORD)
    assert resp.status_code == 303
    auth.client.get("/logout")
    assert auth.login("alice", "wrong password!").status_code == 200
    assert auth.login("alice", PASSWORD).status_code == 303
