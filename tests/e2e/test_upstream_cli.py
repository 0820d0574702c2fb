"""`authserver upstreams add|list|remove`, `users link|unlink` (SPEC section 6): clear
errors, never a traceback; the client secret sealed at rest."""
from __future__ import annotations

from sqlalchemy import select, text
from support import make_user

from authserver import sealing
from authserver.accounts import upstreams
from authserver.accounts.models import UpstreamIdentity
from authserver.extensions import db

ENTRA = "https://login.microsoftonline.com/organizations/v2.0"


def add(runner, *args):
    return runner.invoke(args=["upstreams", "add", *args])


def test_add_list_remove(app, runner):
    res = add(runner, "entra", "--issuer", ENTRA, "--client-id", "cid", "--client-secret",
              "very-secret", "--label", "Microsoft", "--domain", "corp.example",
              "--domain", "@Other.Example", "--create-users")
    assert res.exit_code == 0, res.output
    assert "http://127.0.0.1:5000/login/upstream/entra/callback" in res.output
    res = runner.invoke(args=["upstreams", "list"])
    assert "entra" in res.output and "Microsoft" in res.output
    assert "corp.example,other.example" in res.output and "yes" in res.output
    with app.app_context():
        stored = db.session.execute(text("SELECT client_secret FROM upstreams")).scalar()
        assert "very-secret" not in stored
        assert sealing.unseal(app.config, stored, "upstream-client-secret") == b"very-secret"
        assert ("upstreams", "client_secret", "upstream-client-secret") in sealing.SEALED
        assert upstreams.client_secret(upstreams.find("entra")) == "very-secret"
    res = runner.invoke(args=["upstreams", "remove", "entra"])
    assert res.exit_code == 0 and "Removed upstream entra" in res.output
    assert "0 upstream(s)" in runner.invoke(args=["upstreams", "list"]).output


def test_bad_input_is_a_clear_error(app, runner):
    ok = ["--client-id", "c", "--client-secret", "s"]
    cases = [
        (["Bad Name!", "--issuer", ENTRA, *ok], "A name is"),
        (["x", "--issuer", "not a url", *ok], "issuer must be"),
        (["x", "--issuer", "ftp://id.example.com", *ok], "issuer must be"),
        (["x", "--issuer", "https://id.example.com?x=1", *ok], "issuer must be"),
        (["x", "--issuer", ENTRA, "--client-id", "", "--client-secret", "s"], "client id"),
        (["x", "--issuer", ENTRA, "--client-id", "c", "--client-secret", ""], "client secret"),
        (["x", "--issuer", ENTRA, *ok, "--domain", "not_a domain"], "not a domain"),
        (["x", "--issuer", ENTRA, *ok, "--create-users"], "needs at least one --domain"),
    ]
    for args, message in cases:
        res = add(runner, *args)
        assert res.exit_code != 0 and message in res.output, (args, res.output)
        assert "Traceback" not in res.output
    assert add(runner, "x", "--issuer", ENTRA, *ok).exit_code == 0
    res = add(runner, "x", "--issuer", ENTRA, *ok)
    assert res.exit_code == 1 and "already exists" in res.output
    res = runner.invoke(args=["upstreams", "remove", "nope"])
    assert res.exit_code == 1 and "No upstream called 'nope'" in res.output


def test_users_link_and_unlink(app, runner):
    make_user(app, "alice")
    make_user(app, "bob")
    add(runner, "entra", "--issuer", ENTRA, "--client-id", "c", "--client-secret", "s")
    subject = "72f988bf-86f1-41af-91ab-2d7cd011db47:00000000-0000-0000-66f3-3332eca7ea81"
    res = runner.invoke(args=["users", "link", "alice", "--upstream", "entra",
                              "--subject", subject])
    assert res.exit_code == 0, res.output
    # the same identity for another account, a second identity for alice: refused
    res = runner.invoke(args=["users", "link", "bob", "--upstream", "entra", "--subject", subject])
    assert res.exit_code == 1 and "already connected to another account" in res.output
    res = runner.invoke(args=["users", "link", "alice", "--upstream", "entra", "--subject", "2"])
    assert res.exit_code == 1 and "disconnect it first" in res.output
    for args, message in [
        (["users", "link", "nobody", "--upstream", "entra", "--subject", "x"], "No user named"),
        (["users", "link", "bob", "--upstream", "nope", "--subject", "x"], "No upstream"),
        (["users", "link", "bob", "--upstream", "entra", "--subject", " "], "subject is"),
        (["users", "link", "bob", "--upstream", "entra", "--subject", "x" * 300], "subject is"),
        (["users", "unlink", "bob", "--upstream", "entra"], "has no entra account"),
    ]:
        res = runner.invoke(args=args)
        assert res.exit_code != 0 and message in res.output, (args, res.output)
    res = runner.invoke(args=["users", "link", "bob", "--upstream", "entra"])
    assert res.exit_code == 2 and "--subject" in res.output
    res = runner.invoke(args=["users", "unlink", "alice", "--upstream", "entra"])
    assert res.exit_code == 0 and "Unlinked" in res.output
    with app.app_context():
        assert db.session.scalar(select(UpstreamIdentity)) is None


def test_removing_an_upstream_removes_its_identities(app, runner):
    make_user(app, "alice")
    add(runner, "entra", "--issuer", ENTRA, "--client-id", "c", "--client-secret", "s")
    runner.invoke(args=["users", "link", "alice", "--upstream", "entra", "--subject", "s1"])
    res = runner.invoke(args=["upstreams", "remove", "entra"])
    assert "and 1 linked identity" in res.output
    with app.app_context():
        assert db.session.scalar(select(UpstreamIdentity)) is None
