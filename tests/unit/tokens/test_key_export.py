"""`authserver keys export|import`: a key set moves between installations (here from the
test database to a separate SQLite one with another secret key), encrypted on the way."""
import json
import os
import stat
from datetime import UTC, datetime

import pytest

from authserver import create_app
from authserver.extensions import db
from authserver.schema import init_schema
from authserver.tokens import keyexport, keyfiles, keyset
from support import base_settings

PASSPHRASE = "correct horse battery staple 42"


def jwks(app) -> dict:
    return app.test_client().get("/.well-known/jwks.json").get_json()


def listing(app) -> str:
    result = app.test_cli_runner().invoke(args=["keys", "list"])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def target(tmp_path):
    """Another installation: its own SQLite database, secret key and keys folder, after
    `authserver init` made it a key set of its own."""
    root = tmp_path / "target"
    root.mkdir()
    settings = {**base_settings(str(root), str(root / "keys"), f"sqlite:///{root}/target.db"),
                "SECRET_KEY": "the-target-installation-secret-key"}
    settings.pop("SQLALCHEMY_ENGINE_OPTIONS", None)
    app = create_app(settings)
    init_schema(app)
    result = app.test_cli_runner().invoke(args=["init"])
    assert result.exit_code == 0 and "a new key set" in result.output, result.output
    yield app
    with app.app_context():
        db.engine.dispose()


def export(app, path, passphrase=PASSPHRASE):
    return app.test_cli_runner().invoke(args=["keys", "export", str(path)],
                                        env={"AUTHSERVER_KEYS_PASSPHRASE": passphrase})


def test_export_then_import_moves_the_key_set_and_its_schedule(app, target, tmp_path):
    path = tmp_path / "issuer.keys"
    result = export(app, path)
    assert result.exit_code == 0 and "Exported 2 keys" in result.output, result.output
    assert jwks(target) != jwks(app)

    refused = target.test_cli_runner().invoke(args=["keys", "import", str(path)],
                                              input=PASSPHRASE + "\n")
    assert refused.exit_code == 1 and "--replace" in refused.output
    assert jwks(target) != jwks(app)

    result = target.test_cli_runner().invoke(args=["keys", "import", "--replace", str(path)],
                                             input=PASSPHRASE + "\n")
    assert result.exit_code == 0, result.output
    assert "Dropped 2 keys" in result.output
    assert jwks(target) == jwks(app)
    assert listing(target) == listing(app)
    folder = {entry.kid for entry in keyfiles.read_manifest(target.config["KEYS_DIR"])}
    assert folder == {key["kid"] for key in jwks(app)["keys"]}


def test_importing_the_same_file_twice_changes_nothing(app, target, tmp_path):
    path = tmp_path / "issuer.keys"
    assert export(app, path).exit_code == 0
    runner = target.test_cli_runner()
    env = {"AUTHSERVER_KEYS_PASSPHRASE": PASSPHRASE}
    assert runner.invoke(args=["keys", "import", "--replace", str(path)], env=env).exit_code == 0
    again = runner.invoke(args=["keys", "import", str(path)], env=env)
    assert again.exit_code == 0 and "Dropped" not in again.output
    assert jwks(target) == jwks(app)


def test_the_export_file_is_0600_and_holds_no_key_material_in_clear(app, tmp_path):
    path = tmp_path / "issuer.keys"
    assert export(app, path).exit_code == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    doc = json.loads(text)
    assert doc["format"] == "authserver-keys" and doc["kdf"]["name"] == "scrypt"
    assert "PRIVATE KEY" not in text and "BEGIN" not in text
    assert not any(key["kid"] in text for key in jwks(app)["keys"])


def test_a_wrong_passphrase_or_a_changed_file_is_refused(app, target, tmp_path):
    path = tmp_path / "issuer.keys"
    assert export(app, path).exit_code == 0
    before = jwks(target)
    wrong = target.test_cli_runner().invoke(args=["keys", "import", "--replace", str(path)],
                                            input="not the passphrase at all\n")
    assert wrong.exit_code == 1 and "wrong passphrase" in wrong.output
    doc = json.loads(path.read_text())
    doc["kdf"]["n"] = 2 ** 14
    with pytest.raises(keyexport.ExportFileInvalid):
        keyexport.open_keys(json.dumps(doc).encode(), PASSPHRASE)
    assert jwks(target) == before


def test_export_refuses_a_short_passphrase_and_an_existing_file(app, tmp_path):
    path = tmp_path / "issuer.keys"
    short = export(app, path, passphrase="short")
    assert short.exit_code == 1 and "at least 12" in short.output and not path.exists()
    path.write_text("mine")
    taken = export(app, path)
    assert taken.exit_code == 1 and "exists" in taken.output
    assert path.read_text() == "mine"


def test_a_keys_folder_imports_too(target, tmp_path):
    """The keys folder of an install from before keys lived in the database."""
    folder = tmp_path / "old-keys"
    keys = keyset.new_key_set(datetime(2029, 6, 1, tzinfo=UTC))
    keyfiles.write_key_set(str(folder), keys)
    result = target.test_cli_runner().invoke(args=["keys", "import", "--replace", str(folder)])
    assert result.exit_code == 0, result.output
    assert {key["kid"] for key in jwks(target)["keys"]} == {key.entry.kid for key in keys}
