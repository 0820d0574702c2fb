"""One issuer, one key set: two gunicorn servers on one PostgreSQL database, each with its own
empty keys folder, publish the same JWKS, verify each other's tokens, and follow a
`keys rotate` run on either within KEYS_RELOAD_INTERVAL, publishing the new key before it
signs. A third server whose folder holds keys of its own adopts the set and never signs
with its stray keys (issue 19)."""
from __future__ import annotations

import base64
import json
import re
import shutil
import time
from datetime import UTC, datetime

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from authserver.tokens import keyfiles, keyset
from prodkit import (Deployment, Gunicorn, cli, deployment_env, done, free_port, pg_server_url,
                     postgres_only, scratch_database, stop_all)

pytestmark = postgres_only

RELOAD = 2  # AUTHSERVER_KEYS_RELOAD_INTERVAL, seconds
LEAD = 8  # AUTHSERVER_JWKS_CACHE_TTL: a rotated key signs this long after it is published


@pytest.fixture(scope="module")
def issuer(tmp_path_factory):
    """(deployment, env of B) with servers A and B; `authserver init` ran on both at once."""
    root = tmp_path_factory.mktemp("shared-keys")
    port_a, port_b = free_port(), free_port()
    with scratch_database(pg_server_url(), prefix="authserver_keys") as db_url:
        env_a = {**deployment_env(db_url, root, f"http://127.0.0.1:{port_a}",
                                  AUTHSERVER_KEYS_RELOAD_INTERVAL=str(RELOAD),
                                  AUTHSERVER_JWKS_CACHE_TTL=str(LEAD)),
                 "AUTHSERVER_KEYS_DIR": str(root / "keys-a"),
                 "AUTHSERVER_INSTANCE_PATH": str(root / "instance-a")}
        env_b = {**env_a, "AUTHSERVER_KEYS_DIR": str(root / "keys-b"),
                 "AUTHSERVER_INSTANCE_PATH": str(root / "instance-b")}
        dep = Deployment(env_a, db_url, root)
        done(cli(env_a, "init"))  # the schema first: the two key inits below race each other
        dep.sql("DELETE FROM signing_keys")
        dep.sql("DELETE FROM key_set")
        shutil.rmtree(root / "keys-a")  # both folders empty again, as on two new machines
        inits = [cli(env, "init") for env in (env_a, env_b)]
        outputs = [done(proc) for proc in inits]
        info = json.loads([line for line in done(cli(
            env_a, "clients", "create", "Service", "--grant-type", "client_credentials",
            "--scope", "profile", "--json")).splitlines() if line.startswith("{")][-1])
        dep.cc_client_id, dep.cc_client_secret = info["client_id"], info["client_secret"]
        servers = [Gunicorn("A", env_a, port_a, root, threads=2),
                   Gunicorn("B", env_b, port_b, root, threads=2)]
        dep.servers.extend(servers)
        try:
            for server in servers:
                server.start()
            for server in servers:
                server.wait_ready()
            yield dep, env_b, outputs
        finally:
            stop_all(dep.servers)


def jwks(server) -> dict:
    resp = requests.get(server.url + "/.well-known/jwks.json", timeout=10)
    assert resp.status_code == 200
    return resp.json()


def kids(server) -> set[str]:
    return {key["kid"] for key in jwks(server)["keys"]}


def token_from(server, dep) -> str:
    resp = requests.post(server.url + "/token", data={"grant_type": "client_credentials"},
                         auth=(dep.cc_client_id, dep.cc_client_secret), timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


def header(token: str) -> dict:
    part = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def verify(token: str, server) -> dict:
    return jwt.decode(token, KeySet.import_key_set(jwks(server)), ["RS256", "ES256"]).claims


def test_init_on_the_second_machine_adopts_the_set_the_first_created(issuer):
    dep, _env_b, outputs = issuer
    said = sorted("a new key set" in out for out in outputs)
    assert said == [False, True], outputs  # racing inits: one created, the other adopted
    assert any("from the database" in out for out in outputs), outputs
    assert len(dep.sql("SELECT kid FROM signing_keys")) == 2
    folders = [{e.kid for e in keyfiles.read_manifest(str(dep.root / name))}
               for name in ("keys-a", "keys-b")]
    assert folders[0] == folders[1] == {row[0] for row in dep.sql("SELECT kid FROM signing_keys")}


def test_both_servers_publish_the_same_jwks_and_verify_each_others_tokens(issuer):
    dep, _, _ = issuer
    a, b = dep.servers[:2]
    assert jwks(a) == jwks(b) and len(jwks(a)["keys"]) == 2
    from_a, from_b = token_from(a, dep), token_from(b, dep)
    assert verify(from_a, b)["client_id"] == dep.cc_client_id
    assert verify(from_b, a)["client_id"] == dep.cc_client_id
    assert header(from_a)["kid"] == header(from_b)["kid"]


def test_keys_rotate_on_one_machine_reaches_the_other_and_publishes_before_it_signs(issuer):
    dep, env_b, _ = issuer
    a, b = dep.servers[:2]
    old = kids(a)
    out = done(cli(env_b, "keys", "rotate"))
    rotated_at = time.monotonic()
    activates = {datetime.fromisoformat(t).timestamp()
                 for t in re.findall(r"signs from (\S+)", out)}
    assert len(activates) == 1, out
    activates_at = activates.pop()

    while not (kids(a) > old and kids(b) > old):
        assert time.monotonic() - rotated_at < RELOAD + 4, "rotation did not reach both servers"
        time.sleep(0.2)
    assert jwks(a) == jwks(b)
    new = kids(a) - old
    assert len(new) == 2

    reached = time.monotonic() - rotated_at
    print(f"rotation reached both servers after {reached:.2f} s")
    seen_old = seen_new = False
    while not seen_new:
        assert time.monotonic() - rotated_at < LEAD + RELOAD + 10, "new key never signed"
        for server, other in ((a, b), (b, a)):
            token = token_from(server, dep)
            kid, iat = header(token)["kid"], verify(token, other)["iat"]
            # The new key signs exactly from its activation on; until then the old one does.
            assert (kid in new) == (iat >= activates_at), (server.name, kid, iat, activates_at)
            seen_new |= kid in new
            seen_old |= kid in old
        time.sleep(0.5)
    assert seen_old, "no token signed by the old key while the new one was already published"
    assert jwks(a) == jwks(b)


def test_a_server_with_stray_local_keys_adopts_the_set_and_never_signs_with_them(issuer):
    dep, _, _ = issuer
    a = dep.servers[0]
    folder = dep.root / "keys-c"
    stray = keyset.new_key_set(datetime.now(UTC))
    keyfiles.write_key_set(str(folder), stray)
    stray_kids = {key.entry.kid for key in stray}
    env_c = {**dep.env, "AUTHSERVER_KEYS_DIR": str(folder),
             "AUTHSERVER_INSTANCE_PATH": str(dep.root / "instance-c")}
    c = Gunicorn("C", env_c, free_port(), dep.root, threads=2)
    dep.servers.append(c)
    c.start().wait_ready()
    assert jwks(c) == jwks(a) and not stray_kids & kids(c)
    token = token_from(c, dep)
    assert header(token)["kid"] not in stray_kids
    assert verify(token, a)["client_id"] == dep.cc_client_id
    assert {e.kid for e in keyfiles.read_manifest(str(folder))} == kids(a)
    aside = [p for p in folder.iterdir() if p.name.startswith("stray-")]
    assert len(aside) == 1 and {p.stem for p in aside[0].glob("*.pem")} == stray_kids
    assert "keys import --replace" in c.stderr()
