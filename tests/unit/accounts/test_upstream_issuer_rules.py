"""Entra ID's issuer rules, with ID tokens signed by a local key (SPEC section 10).

`organizations` and `common` accept a token whose `iss` is the template filled with the
token's own `tid`, and refuse one whose `iss` and `tid` disagree; a single-tenant issuer
refuses other tenants. The key set is put in the per-process cache, as a fetch would."""
from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from authserver.accounts import upstreams
from authserver.accounts.factors import upstream as flow
from authserver.accounts.models import Upstream

KEY = RSAKey.generate_key(2048, parameters={"kid": "local", "use": "sig"})
JWKS_URI = "https://login.microsoftonline.com/common/discovery/v2.0/keys"
TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
OTHER = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OID = "00000000-0000-0000-66f3-3332eca7ea81"


@pytest.fixture(autouse=True)
def keys():
    flow.forget_cache()
    flow._cache["jwks " + JWKS_URI] = (time.monotonic(), KeySet([KEY]))
    yield
    flow.forget_cache()


def token(iss, tid, **extra):
    now = int(time.time())
    claims = {"iss": iss, "tid": tid, "oid": OID, "sub": "pairwise-sub", "aud": "app-id",
              "iat": now, "exp": now + 600, "nonce": "n", **extra}
    return jwt.encode({"alg": "RS256", "kid": "local"}, claims, KEY)


def validate(issuer, raw):
    upstream = Upstream(name="entra", issuer=issuer, client_id="app-id")
    return flow.validate_id_token(upstream, raw, "n", JWKS_URI, now=int(time.time()))


def iss(tenant):
    return f"https://login.microsoftonline.com/{tenant}/v2.0"


@pytest.mark.parametrize("configured", ["organizations", "common"])
def test_multi_tenant_accepts_a_token_whose_iss_matches_its_tid(configured):
    claims = validate(iss(configured), token(iss(TENANT), TENANT))
    assert claims["tid"] == TENANT
    upstream = Upstream(name="entra", issuer=iss(configured), client_id="app-id")
    assert upstreams.subject_of(upstream, claims) == f"{TENANT}:{OID}"


@pytest.mark.parametrize("configured", ["organizations", "common"])
def test_multi_tenant_refuses_iss_and_tid_that_disagree(configured):
    with pytest.raises(flow.UpstreamFailed) as err:
        validate(iss(configured), token(iss(OTHER), TENANT))
    assert err.value.reason == "bad_iss"


@pytest.mark.parametrize("configured", ["organizations", "common"])
def test_multi_tenant_refuses_a_token_without_tid(configured):
    raw = token(iss(TENANT), None)
    with pytest.raises(flow.UpstreamFailed):
        validate(iss(configured), raw)


def test_multi_tenant_refuses_the_template_itself():
    with pytest.raises(flow.UpstreamFailed):
        validate(iss("common"), token(iss("{tenantid}"), "{tenantid}"))


def test_single_tenant_accepts_its_own_tenant():
    assert validate(iss(TENANT), token(iss(TENANT), TENANT))["tid"] == TENANT


def test_single_tenant_refuses_other_tenants():
    with pytest.raises(flow.UpstreamFailed) as err:
        validate(iss(TENANT), token(iss(OTHER), OTHER))
    assert err.value.reason == "bad_iss"
    with pytest.raises(flow.UpstreamFailed):  # its own iss, another tenant's tid
        validate(iss(TENANT), token(iss(TENANT), OTHER))


def test_a_token_signed_by_another_key_is_refused(monkeypatch):
    other = RSAKey.generate_key(2048, parameters={"kid": "local", "use": "sig"})
    now = int(time.time())
    raw = jwt.encode({"alg": "RS256", "kid": "local"},
                     {"iss": iss(TENANT), "tid": TENANT, "sub": "s", "aud": "app-id",
                      "iat": now, "exp": now + 60, "nonce": "n"}, other)
    with pytest.raises(flow.UpstreamFailed) as err:
        validate(iss(TENANT), raw)
    assert err.value.reason == "bad_signature"


def test_hs256_with_the_public_key_is_refused():
    raw = token(iss(TENANT), TENANT)
    _, rest = raw.split(".", 1)
    forged = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImxvY2FsIn0." + rest  # {"alg":"HS256","kid":"local"}
    with pytest.raises(flow.UpstreamFailed) as err:
        validate(iss(TENANT), forged)
    assert err.value.reason == "bad_alg"


def test_non_entra_issuers_need_an_exact_match():
    with pytest.raises(flow.UpstreamFailed):
        flow.check_issuer("https://id.example.com", {"iss": "https://id.example.com/"})
    flow.check_issuer("https://id.example.com", {"iss": "https://id.example.com"})
    flow.check_issuer("https://id.example.com", {"iss": "https://id.example.com",
                                                 "tid": "anything"})
