"""oauth.logout.validate_logout: RP-Initiated Logout 1.0 section 2 and 3 checks."""
from __future__ import annotations

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from authserver import clock
from authserver.oauth import services
from authserver.oauth.logout import LogoutRejected, validate_logout
from authserver.tokens import keyring

BYE = "https://app.example/bye"


@pytest.fixture
def rp(ctx):
    client, _ = services.create_client("App", ["https://app.example/cb"],
                                       post_logout_redirect_uris=[BYE])
    return client


def id_token(aud, key=None, **claims) -> str:
    key = key or keyring.current_keyring().signing_key("RS256", clock.now())
    body = {"iss": "http://127.0.0.1:5000", "sub": "s", "aud": aud,
            "iat": clock.timestamp(), "exp": clock.timestamp() + 60, **claims}
    return jwt.encode({"alg": "RS256", "kid": key.kid}, body, key, algorithms=["RS256"])


def test_a_valid_hint_and_registered_uri_redirect_with_state(rp):
    target, hinted = validate_logout(id_token([rp.client_id]), None, BYE, "st 1")
    assert hinted
    assert target == BYE + "?state=st+1"


def test_an_expired_hint_is_still_a_valid_hint(rp):
    hint = id_token(rp.client_id, exp=clock.timestamp() - 3600)
    assert validate_logout(hint, None, BYE, None) == (BYE, True)


def test_without_a_hint_the_user_is_asked(rp):
    target, hinted = validate_logout(None, rp.client_id, BYE, None)
    assert target == BYE and not hinted


def test_without_a_redirect_uri_there_is_nowhere_to_go(rp):
    assert validate_logout(id_token([rp.client_id]), None, None, "s") == (None, True)


@pytest.mark.parametrize("uri", ["https://evil.example/", BYE + "/", BYE + "?x=1"])
def test_an_unregistered_redirect_uri_is_refused(rp, uri):
    with pytest.raises(LogoutRejected):
        validate_logout(id_token([rp.client_id]), None, uri, None)


def test_a_hint_signed_by_another_key_is_refused(rp):
    other = RSAKey.generate_key(2048, parameters={"kid": "not-ours"})
    with pytest.raises(LogoutRejected):
        validate_logout(id_token([rp.client_id], key=other), None, BYE, None)


@pytest.mark.parametrize("hint", ["a.b.c", "x" * 9000, "eyJhbGciOiJub25lIn0.e30."])
def test_a_malformed_hint_is_refused(rp, hint):
    with pytest.raises(LogoutRejected):
        validate_logout(hint, None, BYE, None)


def test_client_id_must_match_the_hint(rp):
    other, _ = services.create_client("Other", ["https://other.example/cb"],
                                      post_logout_redirect_uris=[BYE])
    with pytest.raises(LogoutRejected):
        validate_logout(id_token([rp.client_id]), other.client_id, BYE, None)


def test_redirect_uri_of_another_client_is_refused(rp):
    other, _ = services.create_client("Other", ["https://other.example/cb"],
                                      post_logout_redirect_uris=["https://other.example/bye"])
    with pytest.raises(LogoutRejected):
        validate_logout(id_token([rp.client_id]), None, "https://other.example/bye", None)


def test_a_hint_for_the_signed_in_user_vouches(rp):
    hint = id_token([rp.client_id], sub="alice-sub")
    assert validate_logout(hint, None, BYE, None, "alice-sub") == (BYE, True)


def test_a_hint_for_someone_else_does_not_skip_the_question(rp):
    hint = id_token([rp.client_id], sub="mallory-sub")
    assert validate_logout(hint, None, BYE, None, "alice-sub") == (BYE, False)
    assert validate_logout(hint, None, None, None, "alice-sub") == (None, False)
