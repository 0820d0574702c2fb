"""Schemathesis fuzzes the admin API from its own OpenAPI document, through the WSGI app:
no 5xx, and every answer matches the document (issue 4, "What it must show" 5).

Each operation runs as its own test with a fresh database, positive and negative data,
MAX_EXAMPLES cases each. (Schemathesis' lazy `from_fixture` loader does not run under
pytest 9, so the strategies are driven with Hypothesis directly.)
"""
import os

import pytest
import schemathesis
from support import make_client, make_user
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from authserver.admin.schemas import OPENAPI

MAX_EXAMPLES = int(os.environ.get("ADMIN_API_FUZZ_EXAMPLES", "25"))  # raise it for a deep run
LABELS = [op.ok().label for op in schemathesis.openapi.from_dict(OPENAPI).get_all_operations()]
CASES = [pytest.param(mode, label, id=f"{mode.value}-{label}")
         for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) for label in LABELS
         # the document itself takes no input, so there is nothing to make invalid
         if not (mode is GenerationMode.NEGATIVE
                 and label in ("GET /api/openapi.json", "GET /api/admin/upstreams"))]


@pytest.fixture
def admin_token(app, client):
    """A client_credentials token with scope admin, plus a few rows to find and act on."""
    make_user(app, "alice", name="Alice Liddell")
    make_user(app, "root", admin=True)
    make_client(app, "Payroll", requires_licence=True, client_id="payroll")
    cid, secret = make_client(app, "Admin tool", redirect_uris=(),
                              grant_types=["client_credentials"], scope="admin")
    resp = client.post("/token", data={"grant_type": "client_credentials", "scope": "admin"},
                       auth=(cid, secret))
    return resp.get_json()["access_token"]


def config(token: str) -> schemathesis.Config:
    """The admin token on every request.

    Two defaults are turned off, each for a stated reason:
    - extra query parameters: like most HTTP APIs, unknown parameters are ignored;
    - positive_data_acceptance: an opaque `cursor` or an `email` can be schema-valid and
      still refused (422) - a cursor must come from the API, and an address on a
      special-use domain such as `.test` is not an address; a schema cannot say either.
    """
    return schemathesis.Config.from_dict({
        "headers": {"Authorization": f"Bearer {token}"},
        "generation": {"allow-extra-parameters": False},
        "checks": {"positive_data_acceptance": {"enabled": False}},
    })


def fuzz(operation, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate()
    run()


@pytest.mark.parametrize("mode, label", CASES)
def test_operation_answers_as_documented(app, admin_token, mode, label):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app, config=config(admin_token))
    fuzz(schema.find_operation_by_label(label), mode)
