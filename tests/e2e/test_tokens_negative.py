"""Tokens are refused whenever a rule of SPEC section 3 says so: wrong client, expiry, forgery,
refresh reuse; and /refresh keeps its promises (registered URI only, no loop)."""
from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey
from sqlalchemy import select

from authserver.accounts.models import User
from authserver.audit import SecurityEvent
from authserver.extensions import db
from authserver.tokens.keyring import PRIVATE_MEMBERS
from authserver.tokens.models import RefreshToken
from support import PASSWORD, csrf_from, make_client, make_user, query_of

REDIRECT_URI = "http://127.0.0.1:9999/callback"
LOGOUT_URI = "http://127.0.0.1:9999/signed-out"


@pytest.fixture
def rp(app):
    make_user(app)
    return make_client(app, post_logout_redirect_uris=[LOGOUT_URI])


@pytest.fixture
def tokens(auth, rp):
    """Signed in as alice, with the token response of one code flow."""
    auth.login()
    resp = auth.code_flow(*rp)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def refresh(client, rp, refresh_token):
    return client.post("/token", data={"grant_type": "refresh_token",
                                       "refresh_token": refresh_token}, auth=rp)


def userinfo(client, access_token):
    return client.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})


def introspect(client, rp, token):
    resp = client.post("/introspect", data={"token": token}, auth=rp)
    assert resp.status_code == 200
    return resp.get_json()


def assert_invalid_token(resp):
    assert resp.status_code == 401
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    assert resp.headers["WWW-Authenticate"].startswith("Bearer ")


def b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims_of(token: str) -> tuple[dict, dict]:
    header, payload, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (json.loads(base64.urlsafe_b64decode(pad(header))),
            json.loads(base64.urlsafe_b64decode(pad(payload))))


def events(app, name: str) -> list[SecurityEvent]:
    with app.app_context():
        return db.session.scalars(select(SecurityEvent).where(SecurityEvent.name == name)).all()


# --- client authentication at /token ----------------------------------------------------------

def test_wrong_secret_with_basic_auth_is_401_invalid_client(client, auth, rp):
    auth.login()
    resp, verifier, params = auth.authorize(rp[0])
    code = query_of(resp.headers["Location"])["code"]
    resp = client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                       "redirect_uri": REDIRECT_URI, "code_verifier": verifier},
                       auth=(rp[0], "wrong-secret"))
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_client"
    assert resp.headers["WWW-Authenticate"].startswith("Basic")


def test_wrong_secret_in_the_body_is_401_invalid_client(client, rp):
    resp = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": "x",
                                       "client_id": rp[0], "client_secret": "wrong"})
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_client"


def test_unknown_client_is_401_invalid_client(client):
    resp = client.post("/token", data={"grant_type": "client_credentials"},
                       auth=("nobody", "nothing"))
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_client"


def test_confidential_client_without_a_secret_is_refused(client, rp):
    resp = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": "x",
                                       "client_id": rp[0]})
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_client"


def test_public_client_cannot_use_client_credentials_or_a_secret(app, client):
    client_id, _ = make_client(app, public=True)
    resp = client.post("/token", data={"grant_type": "client_credentials",
                                       "client_id": client_id})
    assert resp.status_code in (400, 401)
    assert resp.get_json()["error"] in ("unauthorized_client", "invalid_client")


def test_client_without_the_grant_gets_unauthorized_client(client, rp):
    resp = client.post("/token", data={"grant_type": "client_credentials"}, auth=rp)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "unauthorized_client"


@pytest.mark.parametrize("asked", ["admin", "profile admin", "openid email admin"])
def test_client_credentials_never_grants_more_than_the_registered_scope(app, client, asked):
    cid, secret = make_client(app, "Service", redirect_uris=[],
                              grant_types=["client_credentials"], scope="profile")
    resp = client.post("/token", data={"grant_type": "client_credentials", "scope": asked},
                       auth=(cid, secret))
    assert resp.status_code in (200, 400)
    if resp.status_code == 200:
        _, claims = claims_of(resp.get_json()["access_token"])
        assert set(claims["scope"].split()) <= {"profile"}
        assert set(resp.get_json().get("scope", "").split()) <= {"profile"}
    else:
        assert resp.get_json()["error"] == "invalid_scope"


@pytest.mark.parametrize("grant_type", ["password", "implicit", "urn:ietf:params:oauth:"
                                        "grant-type:device_code", ""])
def test_unsupported_grant_types_are_refused(client, rp, grant_type):
    resp = client.post("/token", data={"grant_type": grant_type}, auth=rp)
    assert resp.status_code == 400
    assert resp.get_json()["error"] in ("unsupported_grant_type", "invalid_request")


def test_token_errors_are_rfc6749_json_and_never_cached(client, rp):
    resp = client.post("/token", data={"grant_type": "refresh_token",
                                       "refresh_token": "nope"}, auth=rp)
    assert resp.status_code == 400
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert body["error"] == "invalid_grant"
    assert set(body) <= {"error", "error_description", "error_uri"}
    assert "no-store" in resp.headers["Cache-Control"]


def test_token_success_is_never_cached(client, tokens, auth, rp):
    resp = auth.code_flow(*rp)
    assert resp.status_code == 200
    assert "no-store" in resp.headers["Cache-Control"]


# --- access tokens ----------------------------------------------------------------------------

def test_access_token_is_refused_at_userinfo_after_sixty_minutes(frozen, client, tokens):
    assert userinfo(client, tokens["access_token"]).status_code == 200
    frozen.tick(timedelta(minutes=59))
    assert userinfo(client, tokens["access_token"]).status_code == 200
    frozen.tick(timedelta(minutes=2))
    assert_invalid_token(userinfo(client, tokens["access_token"]))


def test_access_token_lifetime_is_sixty_minutes(tokens):
    assert tokens["expires_in"] == 3600
    _, claims = claims_of(tokens["access_token"])
    assert claims["exp"] - claims["iat"] == 3600


def test_expired_access_token_is_inactive_at_introspection(frozen, client, rp, tokens):
    frozen.tick(timedelta(minutes=61))
    assert introspect(client, rp, tokens["access_token"]) == {"active": False}


def test_userinfo_without_a_token_asks_for_one(client):
    resp = client.get("/userinfo")
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_userinfo_refuses_the_id_token(client, tokens):
    assert_invalid_token(userinfo(client, tokens["id_token"]))


def test_userinfo_refuses_a_token_in_the_query_string(client, tokens):
    resp = client.get("/userinfo", query_string={"access_token": tokens["access_token"]})
    assert resp.status_code == 401


def test_a_token_with_an_altered_signature_is_refused(client, rp, tokens):
    header, payload, signature = tokens["access_token"].split(".")
    flipped = ("A" if signature[10] != "A" else "B")
    forged = f"{header}.{payload}.{signature[:10]}{flipped}{signature[11:]}"
    assert_invalid_token(userinfo(client, forged))
    assert introspect(client, rp, forged) == {"active": False}


def test_a_token_with_altered_claims_is_refused(client, rp, tokens):
    header, _, signature = tokens["access_token"].split(".")
    _, claims = claims_of(tokens["access_token"])
    claims["scope"] = "openid profile email admin"
    forged = f"{header}.{b64(claims)}.{signature}"
    assert_invalid_token(userinfo(client, forged))
    assert introspect(client, rp, forged) == {"active": False}


def test_an_alg_none_token_is_refused(client, rp, tokens):
    header, claims = claims_of(tokens["access_token"])
    for alg in ("none", "None", "NONE"):
        unsigned = f"{b64({**header, 'alg': alg})}.{b64(claims)}."
        assert_invalid_token(userinfo(client, unsigned))
        assert introspect(client, rp, unsigned) == {"active": False}


def test_a_token_signed_with_another_key_under_our_kid_is_refused(client, rp, tokens):
    header, claims = claims_of(tokens["access_token"])
    native = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = RSAKey.import_key(native)
    forged = jwt.encode(header, claims, key, algorithms=["RS256"])
    assert_invalid_token(userinfo(client, forged))
    assert introspect(client, rp, forged) == {"active": False}


def test_an_hs256_token_keyed_with_our_public_key_is_refused(client, app, rp, tokens):
    header, claims = claims_of(tokens["access_token"])
    jwks = client.get("/.well-known/jwks.json").get_json()
    public = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    secret = OctKey.import_key(json.dumps(public, sort_keys=True).encode())
    forged = jwt.encode({**header, "alg": "HS256"}, claims, secret, algorithms=["HS256"])
    assert_invalid_token(userinfo(client, forged))


def test_a_token_from_another_issuer_is_refused(app, client, rp, tokens):
    app.config["ISSUER"] = "http://other.example"
    try:
        assert_invalid_token(userinfo(client, tokens["access_token"]))
    finally:
        app.config["ISSUER"] = "http://127.0.0.1:5000"


def test_jwks_never_shows_a_private_member(client):
    resp = client.get("/.well-known/jwks.json")
    assert resp.status_code == 200
    keys = resp.get_json()["keys"]
    assert {k["kty"] for k in keys} == {"RSA", "EC"}
    for key in keys:
        assert key["kid"]
        assert not PRIVATE_MEMBERS & set(key)
        assert not {"d", "p", "q", "dp", "dq", "qi", "oth", "k"} & set(key)
    assert '"d"' not in resp.get_data(as_text=True)


def test_revocation_ignores_an_unknown_token_type_hint(client, rp, tokens):
    resp = client.post("/revoke", data={"token": tokens["refresh_token"],
                                        "token_type_hint": "bogus"}, auth=rp)
    assert resp.status_code == 200
    assert introspect(client, rp, tokens["refresh_token"]) == {"active": False}


def test_introspection_ignores_an_unknown_token_type_hint(client, rp, tokens):
    resp = client.post("/introspect", data={"token": tokens["access_token"],
                                            "token_type_hint": "bogus"}, auth=rp)
    assert resp.status_code == 200
    assert resp.get_json()["active"] is True


def test_introspection_refuses_a_public_client(app, client, tokens):
    pub, _ = make_client(app, "Public", public=True)
    resp = client.post("/introspect", data={"token": tokens["access_token"],
                                            "client_id": pub})
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_client"


def test_introspection_hides_another_clients_token(app, client, tokens):
    other = make_client(app, "Other")
    assert introspect(client, other, tokens["access_token"]) == {"active": False}
    assert introspect(client, other, tokens["refresh_token"]) == {"active": False}


# --- refresh tokens ---------------------------------------------------------------------------

def test_refresh_family_expires_thirty_days_after_login_whatever_the_rotation(frozen, client,
                                                                            rp, tokens):
    current = tokens["refresh_token"]
    for _ in range(2):
        frozen.tick(timedelta(days=10))
        resp = refresh(client, rp, current)
        assert resp.status_code == 200, resp.get_json()
        current = resp.get_json()["refresh_token"]
    frozen.tick(timedelta(days=9, hours=23))
    resp = refresh(client, rp, current)
    assert resp.status_code == 200, resp.get_json()
    current = resp.get_json()["refresh_token"]
    frozen.tick(timedelta(hours=1, seconds=1))
    resp = refresh(client, rp, current)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_grant"


def test_refresh_tokens_are_opaque_and_stored_only_as_a_hash(app, tokens):
    raw = tokens["refresh_token"]
    assert raw.count(".") == 0 and len(raw) >= 43  # 32 random bytes, base64url
    with app.app_context():
        hashes = db.session.scalars(select(RefreshToken.token_hash)).all()
    assert raw not in hashes and len(hashes) == 1


def test_refresh_token_reuse_revokes_the_family_and_records_an_event(app, client, rp, tokens):
    first = tokens["refresh_token"]
    second = refresh(client, rp, first).get_json()["refresh_token"]
    resp = refresh(client, rp, first)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"
    resp = refresh(client, rp, second)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"
    assert len(events(app, "refresh_reuse")) == 1


def test_refresh_token_of_another_client_is_refused(app, client, rp, tokens):
    other = make_client(app, "Other")
    resp = refresh(client, other, tokens["refresh_token"])
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"
    assert refresh(client, rp, tokens["refresh_token"]).status_code == 200


def test_refresh_token_is_bound_to_the_authenticated_client_not_a_body_client_id(
        app, client, rp, tokens):
    other = make_client(app, "Other")
    resp = client.post("/token", data={"grant_type": "refresh_token", "client_id": rp[0],
                                       "refresh_token": tokens["refresh_token"]}, auth=other)
    assert resp.status_code in (400, 401)
    assert resp.get_json()["error"] in ("invalid_grant", "invalid_client")
    assert events(app, "refresh_reuse") == []
    assert refresh(client, rp, tokens["refresh_token"]).status_code == 200


def test_another_client_cannot_revoke_a_family_with_a_spent_token(app, client, rp, tokens):
    first = tokens["refresh_token"]
    second = refresh(client, rp, first).get_json()["refresh_token"]
    other = make_client(app, "Other")
    client.post("/token", data={"grant_type": "refresh_token", "client_id": rp[0],
                                "refresh_token": first}, auth=other)
    assert refresh(client, rp, second).status_code == 200


@pytest.mark.parametrize("state", ["disabled", "reset_required", "force_change_password"])
def test_refresh_is_refused_once_the_account_cannot_use_tokens(app, client, rp, tokens, state):
    """Even when the state was set without ending the sessions (states.can_use_tokens)."""
    with app.app_context():
        db.session.execute(db.update(User).values(state=state))
        db.session.commit()
    resp = refresh(client, rp, tokens["refresh_token"])
    assert resp.status_code == 400
    assert resp.get_json()["error"] in ("invalid_grant", "invalid_request")
    assert_invalid_token(userinfo(client, tokens["access_token"]))


def test_refresh_cannot_widen_the_scope(client, rp, tokens):
    resp = client.post("/token", data={"grant_type": "refresh_token", "scope": "openid admin",
                                       "refresh_token": tokens["refresh_token"]}, auth=rp)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_scope"


@pytest.fixture
def grace(settings):
    settings["REFRESH_REUSE_GRACE"] = 5


def test_reuse_grace_lets_a_retry_succeed_without_revoking(grace, frozen, app, client, rp,
                                                           tokens):
    first = tokens["refresh_token"]
    lost = refresh(client, rp, first).get_json()["refresh_token"]
    frozen.tick(timedelta(seconds=4))
    retry = refresh(client, rp, first)
    assert retry.status_code == 200, retry.get_json()
    kept = retry.get_json()["refresh_token"]
    assert kept != lost
    assert events(app, "refresh_reuse") == []
    assert refresh(client, rp, kept).status_code == 200


def test_reuse_after_the_grace_revokes_the_family(grace, frozen, app, client, rp, tokens):
    first = tokens["refresh_token"]
    second = refresh(client, rp, first).get_json()["refresh_token"]
    frozen.tick(timedelta(seconds=6))
    resp = refresh(client, rp, first)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"
    assert refresh(client, rp, second).status_code == 400
    assert len(events(app, "refresh_reuse")) == 1


def test_refresh_token_dies_with_the_browser_session_at_logout(client, rp, tokens):
    token = csrf_from(client.get("/logout").get_data(as_text=True))
    resp = client.post("/logout", data={"csrf_token": token})
    assert resp.status_code in (200, 302, 303)
    resp = refresh(client, rp, tokens["refresh_token"])
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"


def test_logout_without_a_hint_asks_first_and_keeps_the_session(client, rp, tokens):
    page = client.get("/logout")
    assert page.status_code == 200
    assert "Sign out?" in page.get_data(as_text=True)
    assert refresh(client, rp, tokens["refresh_token"]).status_code == 200


def test_logout_to_an_unregistered_uri_is_refused_and_keeps_the_session(client, rp, tokens):
    resp = client.get("/logout", query_string={"id_token_hint": tokens["id_token"],
                                               "post_logout_redirect_uri": "http://evil.example/"})
    assert resp.status_code == 400
    assert "Location" not in resp.headers
    assert refresh(client, rp, tokens["refresh_token"]).status_code == 200


def test_logout_with_another_users_id_token_asks_first(app, client, rp, tokens):
    """RP-Initiated Logout 1.0 section 2: a hint that is not the signed-in user's is no vouch."""
    make_user(app, "bob")
    bob = app.test_client()
    assert bob.post("/login", data={"username": "bob", "password": PASSWORD, "csrf_token":
                                    csrf_from(bob.get("/login").get_data(as_text=True))}
                    ).status_code == 303
    resp = bob.get("/logout", query_string={"id_token_hint": tokens["id_token"],
                                            "post_logout_redirect_uri": LOGOUT_URI})
    assert resp.status_code == 200
    assert "Sign out?" in resp.get_data(as_text=True)
    resp = client.get("/logout", query_string={"id_token_hint": tokens["id_token"],
                                               "post_logout_redirect_uri": LOGOUT_URI})
    assert resp.status_code == 302 and resp.headers["Location"] == LOGOUT_URI
