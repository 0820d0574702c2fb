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


def test_the_header_names_the_organisation(settings):
    from authserver import create_app
    app = create_app({**settings, "ORGANISATION_NAME": "Acme Payroll"})
    html = app.test_client().get("/login").get_data(as_text=True)
    assert "Acme Payroll sign-in</a>" in html


def test_run_demo_names_the_demo_organisation_unless_one_is_set(app, monkeypatch):
    """`authserver run --demo` as typed, with the two servers it would start replaced by a
    look at the sign-in page it would serve."""
    from authserver.commands import server
    headers = []

    def serve(host, port, wsgi_app, **options):
        headers.append(wsgi_app.test_client().get("/login").get_data(as_text=True))

    monkeypatch.setattr(server, "run_simple", serve)
    monkeypatch.setattr(server, "start_demo_app", lambda *args: None)
    result = app.test_cli_runner().invoke(args=["run", "--demo"])
    assert result.exit_code == 0, result.output
    assert f"{DEMO_ORGANISATION} sign-in</a>" in headers[0]
    app.config["ORGANISATION_NAME"] = "Acme Payroll"
    assert app.test_cli_runner().invoke(args=["run", "--demo"]).exit_code == 0
    assert "Acme Payroll sign-in</a>" in headers[1]
