"""/openapi.json: generated from the route table and the wire types, it
describes every route with its scope; and a bounded property-based fuzz
(schemathesis) against the embedded store finds no 5xx and no answer that
breaks its own schema."""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from hypothesis import settings as hypothesis_settings

from server.app import create_app
from server.settings import Settings
from tests.test_auth import EXPECTED_SCOPES

ADMIN = "fuzz-admin-token-0123456789abcdef0123"


def test_every_route_is_described_with_its_scope():
    spec = json.loads(create_app().state.openapi)
    described = {(method.upper(), path): op["x-rota-scope"]
                 for path, ops in spec["paths"].items() for method, op in ops.items()}
    assert described == EXPECTED_SCOPES
    claim = spec["paths"]["/api/jobs/claim"]["post"]
    assert claim["security"] == [{"bearer": []}]
    body = claim["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ClaimRequest"}
    assert spec["components"]["schemas"]["ClaimRequest"]["required"] == ["worker_id"]
    assert set(spec["paths"]["/api/workflows"]["post"]["requestBody"]["content"]) >= {
        "application/json", "application/yaml"}
    for code in ("401", "403", "415", "422"):
        assert claim["responses"][code]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"}
    assert spec["paths"]["/healthz"]["get"]["security"] == []
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


async def test_openapi_needs_no_token(auth_api):
    resp = await auth_api.get("/openapi.json")
    assert resp.status_code == 200 and resp.json()["openapi"].startswith("3.1")


# The fuzzed app: embedded store, auth on (the fuzz sends the admin token),
# long-polls and keep-alives short so no case waits.
_app = create_app(Settings(workflows_dir=None, auth=True, admin_token=ADMIN, allowed_hosts=("testserver",),
                           max_wait_secs=0.05, keepalive_secs=0.05, reap_interval_secs=0.5))
schema = schemathesis.openapi.from_asgi("/openapi.json", _app)


@pytest.mark.slow
@schema.parametrize()
@hypothesis_settings(max_examples=15, deadline=None, derandomize=True,
                     suppress_health_check=list(HealthCheck))
def test_fuzz_no_5xx_and_answers_match_their_schema(case):
    # Not "schema-valid data is accepted": a document that fits the schema
    # may still be refused (a cycle, an unknown need), which a JSON schema
    # cannot say. Every answer must still be one the description allows.
    case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN}"}, checks=[
        not_a_server_error, status_code_conformance, content_type_conformance,
        response_schema_conformance, response_headers_conformance])
