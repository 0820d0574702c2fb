"""`authserver run --demo` seeding: what it prints must work when the person tries it."""
from __future__ import annotations

from authserver.commands.server import DEMO_ORGANISATION, print_demo, seed_demo
from authserver.accounts import services as accounts
from authserver.extensions import db
from authserver.passwords import services as passwords


def printed(app, capsys, port=5000):
    with app.app_context():
        data = seed_demo(app, port)
        print_demo(app, data)
    return capsys.readouterr().out


def test_the_printed_password_signs_in(app, client, capsys, auth):
    out = printed(app, capsys)
    password = out.split("user name: alice")[1].split("password:")[1].split()[0]
    assert auth.login("alice", password).status_code == 303


def test_a_password_changed_since_seeding_is_never_printed_again(app, capsys):
    first = printed(app, capsys)
    old = first.split("user name: alice")[1].split("password:")[1].split()[0]
    with app.app_context():
        passwords.change_password(accounts.find_by_login("alice"), "Brand-New-Lantern-77",
                                  current=old)
        db.session.commit()
    again = printed(app, capsys)
    assert old not in again
    assert "changed since the demo was seeded" in again


def test_demo_says_how_to_reach_the_authserver_command(app, capsys):
    assert ". .venv/bin/activate" in printed(app, capsys)
    assert DEMO_ORGANISATION
