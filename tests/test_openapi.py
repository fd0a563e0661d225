"""/openapi.json: generated from the route table and the wire types, it
describes every route with its scope and exactly what the server accepts:
its patterns mean the same in ECMA-262 (what a generated client or Ajv
runs) as in Python (what the server runs), its limits and enums are the
ones checked; and a bounded property-based fuzz (schemathesis, every check)
against the embedded store finds no 5xx, no answer outside the description,
no schema-valid request refused and no schema-breaking one taken."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import msgspec
import msgspec.inspect as mi
import pytest
import schemathesis
from hypothesis import HealthCheck, assume
from schemathesis.checks import CHECKS, load_all_checks, negative_data_rejection, positive_data_acceptance
from hypothesis import settings as hypothesis_settings

from server import limits, openapi
from server.app import create_app
from server.routes import logs
from server.models.tokens import StreamPath
from server.ui.pages import PAGES
from server.routing import OneOf
from server.settings import Settings
from tests.test_api import assert_error
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


# ---- patterns: what the server checks (Python's re), a client checks too (ECMA-262) --------


def _published_patterns(node: object) -> set[str]:
    if isinstance(node, dict):
        return set().union(*(_published_patterns(v) for v in node.values()),
                           {node["pattern"]} if isinstance(node.get("pattern"), str) else set())
    if isinstance(node, list):
        return set().union(*(_published_patterns(v) for v in node))
    return set()


def _checked_patterns(endpoints) -> set[str]:
    """Every pattern msgspec checks a request or answer against (Python's re.search)."""
    found: set[str] = set()
    seen: set[int] = set()

    def visit(info) -> None:
        if isinstance(info, mi.StrType) and info.pattern:
            found.add(info.pattern)
        elif isinstance(info, mi.Metadata):
            visit(info.type)
        elif isinstance(info, mi.StructType) and id(info.cls) not in seen:
            seen.add(id(info.cls))
            for field in info.fields:
                visit(field.type)
        elif isinstance(info, mi.UnionType):
            for member in info.types:
                visit(member)
        elif isinstance(info, mi.CollectionType):
            visit(info.item_type)
        elif isinstance(info, mi.DictType):
            visit(info.key_type)
            visit(info.value_type)

    types = [t for e in endpoints for t in (e.body, e.yaml, e.response, *(p.type for p in e.params))
             if t is not None]
    types = [m for t in types for m in (t.types if isinstance(t, OneOf) else (t,))]
    for info in mi.multi_type_info(types):
        visit(info)
    return found


# Strings that tell the two engines apart if anything can: a trailing or
# leading newline, every kind of space, Unicode digits and letters, astral
# characters, and lengths either side of each limit.
_CORPUS = ["", "a", "A", "Z9", "0", "_", "-", ".", "a.b", "a:b", "a/b", "a=b", "a+b", "a-b", "a_b", "a b", "a,b",
           "a\tb", "a\rb", "a\x00b", "a\x1bb", "a\x1cb", "a\x7fb", "a\x85b", "a\xa0b", "a\u1680b", "a\u2007b",
           "a\u2028b", "a\u2029b", "a\u202fb", "a\u3000b", "a\ufeffb", "\u0663", "\xe9t\xe9", "\u0130", "K",
           "\U0001f600", "1-0", "1710000000000-0", "12345678901234567890-0", "12", "build", "main:x", "k:", ":v",
           "a:b:c", "a:\n", "\u00b2", "a\u200bb", "/api/runs/r1/events/stream", "/api/runs/r1/events/stream?x",
           "/api/workflows/w/jobs/j/logs/stream", "/api/runs//events/stream", "/api/runs/a/b/events/stream",
           "2026-05-01T09:00:00Z", "2026-05-01 09:00:00.5+02:00", "2026-05-01T09:00", "90s", "1.5h", "250ms", "7",
           "90 s", "\u0663s", "10 per 1m", " 2\tper 30s ", "1 per 1x", "1 per\u00a01d", "\u0661 per 1m", "\u2003x",
           " \u3000"]
_CORPUS += [c * n for c in ("x", "\U0001f600") for n in (31, 32, 33, 63, 64, 65, 100, 101, 127, 128, 129, 199,
                                                             200, 201, 256, 257)]
_CORPUS += [s + "\n" for s in list(_CORPUS)] + ["\n" + s for s in ("a", "x" * 64)] + ["k:" + "v" * 256,
                                                                                       "k:" + "v" * 257]

_NODE = r"""
const {patterns, samples} = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = {};
for (const p of patterns) {
  try { const re = new RegExp(p, 'u'); out[p] = samples.map(s => re.test(s)); }
  catch (e) { out[p] = String(e); }
}
process.stdout.write(JSON.stringify(out));
"""


def _node() -> str:
    path = shutil.which("node")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("node is missing in CI: .ci/run must install it")
        pytest.skip("no node binary: the ECMA-262 side of the pattern check needs one")
    return path


def test_every_pattern_means_in_ecma262_what_the_server_checks():
    app = create_app()
    published = _published_patterns(json.loads(app.state.openapi))
    checked = _checked_patterns(app.state.endpoints)
    assert published == {openapi.portable(p) for p in checked}
    pairs = sorted((openapi.portable(p), p) for p in checked)
    done = subprocess.run([_node(), "-e", _NODE], capture_output=True, text=True, timeout=120,
                          input=json.dumps({"patterns": [js for js, _ in pairs], "samples": _CORPUS}))
    assert done.returncode == 0, done.stderr
    by_js = json.loads(done.stdout)
    for js, py in pairs:
        in_js = by_js[js]
        assert isinstance(in_js, list), f"{js!r} is no ECMA-262 pattern: {in_js}"
        in_python = [re.search(py, sample) is not None for sample in _CORPUS]  # as msgspec checks it
        differ = [sample for sample, a, b in zip(_CORPUS, in_js, in_python) if a != b]
        assert differ == [], f"{js!r} (server: {py!r}) differs on {differ[:5]}"
        # the corpus reaches each pattern, and with a newline after a match (Python's `$` case)
        taken = [sample for sample, ok in zip(_CORPUS, in_python) if ok]
        assert any(s + "\n" in _CORPUS for s in taken), f"no sample matches {py!r}"


def test_a_pattern_that_would_mean_something_else_in_ecma262_is_refused():
    for pattern in (r"^[a-z]+$", r"^\s+\Z", r"^\w\Z", r"^\d{3}\Z", r"^(?i)[a-z]\Z", r"^(?P<x>a)\Z", r"\Aabc\Z"):
        with pytest.raises(ValueError, match="ECMA-262"):
            openapi.portable(pattern)
    assert openapi.portable(r"^[A-Za-z0-9_.-]{1,100}\Z") == "^[A-Za-z0-9_.-]{1,100}$"


# ---- what the description says matches what the server does ---------------------------


def test_the_description_states_the_limits_the_server_checks():
    spec = json.loads(create_app().state.openapi)
    params = {p["name"]: p["schema"] for p in spec["paths"]["/api/runs"]["get"]["parameters"]}
    assert params["limit"] == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    assert set(params["status"]["enum"]) == {"delayed", "queued", "running", "success", "failure", "cancelled",
                                            "expired"}
    assert params["created_after"] == {"type": "integer", "minimum": 0, "maximum": limits.MAX_EPOCH_MS}
    levels = {p["name"]: p["schema"] for p in
              spec["paths"]["/api/runs/{run_id}/jobs/{job}/logs"]["get"]["parameters"]}["level"]
    assert set(levels["enum"]) == {"debug", "info", "warn", "error", "warning"}
    key = spec["paths"]["/api/jobs/{lease_id}/state/{key}"]["put"]["parameters"]
    assert [p["schema"] for p in key if p["name"] == "key"] == [{"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"}]
    bulk = spec["components"]["schemas"]["BulkRequest"]
    assert bulk["oneOf"] == [{"required": ["run_ids"], "properties": {"run_ids": {"not": {"type": "null"}}}},
                             {"required": ["filter"], "properties": {"filter": {"not": {"type": "null"}}}}]
    assert set(spec["components"]["schemas"]["LogBody"]["anyOf"][0]["required"]) == {"logs"}
    annotate = spec["paths"]["/api/jobs/{lease_id}/annotate"]["post"]["requestBody"]["content"]["application/json"]
    assert len(annotate["schema"]["oneOf"]) == 2
    document = spec["paths"]["/api/workflows"]["post"]["requestBody"]["content"]
    assert document["application/yaml"]["schema"] == document["application/json"]["schema"]
    # an answer without a body says so
    deleted = spec["paths"]["/api/workflows/{wf}"]["delete"]["responses"]["204"]
    assert "content" not in deleted
    assert set(spec["paths"]["/api/workflows/{wf}"]["put"]["responses"]) >= {"200", "201"}


async def test_a_whole_number_float_is_an_integer_as_the_schema_says(api):
    claim = await api.post("/api/jobs/claim", json={"worker_id": "w", "lease_ttl_secs": 600.0, "wait_secs": 0})
    assert claim.status_code == 200 and claim.json() is None
    assert_error(await api.post("/api/jobs/claim", json={"worker_id": "w", "lease_ttl_secs": 600.5}), 422,
                 "invalid_body")
    # ints only where an int is declared: a string stays refused, a float field keeps its value
    assert_error(await api.post("/api/jobs/claim", json={"worker_id": "w", "lease_ttl_secs": "600"}), 422)
    doc = {"name": "floats", "jobs": {"a": {"run": "true", "retries": 2.0, "timeout_secs": 60.0, "priority": -1.0}}}
    wf = await api.post("/api/workflows", json=doc)
    assert wf.status_code == 201, wf.text
    assert wf.json()["jobs"][0]["max_retries"] == 2
    token = await api.post("/api/tokens", json={"name": "t", "scopes": ["read"], "expires_in_secs": 3600.0})
    assert token.status_code == 201, token.text


@pytest.mark.parametrize("query", ["/api/runs?limit=0", "/api/runs?status=nope", "/api/runs?cursor=%C2%B2",
                                   "/api/dead-letters?cursor=%C2%B2", "/api/runs?limit=", "/api/runs?tag=nocolon",
                                   "/api/workflows?run=maybe", "/api/runs?stauts=failure",
                                   "/api/runs/r/jobs/j/logs?level=loud"])
async def test_query_values_the_description_refuses_are_refused(api, query):
    method = api.post if query.startswith("/api/workflows?run") else api.get
    err = assert_error(await method(query), 422)
    assert err["details"]["field"] == query.split("?")[1].split("=")[0]


async def test_ids_shown_to_people_hold_no_control_characters_and_steps_are_bounded(api):
    for worker_id in ("evil\x1b[2J", "tab\there", "nbsp\xa0id", "bom\ufeff"):
        err = assert_error(await api.post("/api/workers/register", json={"worker_id": worker_id}), 422)
        assert err["details"]["field"] == "$.worker_id"
    assert (await api.post("/api/workers/register", json={"worker_id": "host-1.example/3"})).status_code == 200
    # a step id is checked before anything else: no lease needed to be refused
    err = assert_error(await api.post(f"/api/jobs/nolease/steps/{'s' * 129}/running", json={}), 422, "invalid_path")
    assert err["details"]["field"] == "step"


async def test_an_unknown_query_parameter_names_the_ones_the_call_takes(api):
    err = assert_error(await api.get("/api/runs?stauts=failure"), 422, "unknown_parameter")
    assert "stauts" in err["message"] and "status" in err["details"]["accepted"]


# The fuzzed app: embedded store, auth on (the fuzz sends the admin token),
# long-polls and keep-alives short so no case waits.
_app = create_app(Settings(workflows_dir=None, auth=True, admin_token=ADMIN, allowed_hosts=("testserver",),
                           max_wait_secs=0.05, keepalive_secs=0.05, reap_interval_secs=0.5))
schema = schemathesis.openapi.from_asgi("/openapi.json", _app)
load_all_checks()
ALL_CHECKS = CHECKS.get_all()
# A workflow or spawn document that fits its schema may still be refused:
# needs must name jobs that exist, without cycles, `${{ }}` only where the
# worker reads it; no JSON Schema can say that. Every other check holds for
# them too, negative data included: what the schema refuses, the server does.
DOCUMENTS = {"POST /api/workflows", "PUT /api/workflows/{wf}", "POST /api/jobs/{lease_id}/spawn",
             "POST /sdk/v1/runs/{lease_id}/spawn"}
# A run's start time must also fall within the scheduling horizon (a year
# from now, see SCHEDULE_HORIZON) and at most one of a pair (scheduled_at or
# delay, expires_at or expires_in) may be given: what the clock says now,
# and "not both", no JSON Schema can state. Nor can it say that an
# overrides' `backoff` mapping names `fixed` or `exponential` (any case),
# nor that its max_secs is at least its base_secs.
TIMED = {"POST /api/workflows/{wf}/runs", "POST /api/runs/{run_id}/restart", "POST /api/runs/{run_id}/reschedule"}
# A dashboard page takes any query parameters (its own state, read by its
# script): every query string is one it accepts, so no generated query can
# be "schema-violating" once sent as text (a null or a number arrives as the
# string "null" or "-4").
FREE_FORM = {f"GET {page.path}" for page in PAGES}


def _body_fits(body: object) -> bool:
    """Whether a generated body is well within MAX_BODY_BYTES: one over it
    is refused 413 before it is read, a rejection the negative-data check
    does not count as one (a schema-breaking 10 MB document would fail it)."""
    try:
        size = len(body) if isinstance(body, (bytes, str)) else len(msgspec.json.encode(body))
    except (TypeError, msgspec.EncodeError):
        return True
    return size <= Settings().max_body_bytes // 2


def _sent_as_generated(value: object) -> bool:
    if isinstance(value, list):
        return bool(value) and all(_sent_as_generated(item) and not isinstance(item, list) for item in value)
    return value is not None and not isinstance(value, dict)


@pytest.mark.slow
@schema.parametrize()
@hypothesis_settings(max_examples=15, deadline=None, derandomize=True,
                     suppress_health_check=list(HealthCheck))
def test_fuzz_every_check_holds_on_every_route(case):
    """Every schemathesis check (as `st run --checks all`): no 5xx; each
    answer fits its declared status, content type, headers and schema;
    schema-valid requests are taken (bar the documents above) and
    schema-breaking ones refused; 405s list the allowed methods; a call
    without its token is refused."""
    # A query value of None is not sent at all (requests drops it), nor a
    # list of no plain values ([{}, []]), and a mapping is sent as its keys:
    # that case's request is not the one generated, so its verdict would be
    # wrong.
    query = case.query or {}
    assume(all(_sent_as_generated(value) for value in query.values()))
    assume(_body_fits(case.body))
    # Parameters that may not go together, which no JSON Schema can say of
    # parameters (a log page is placed by after, before or tail): said in
    # their descriptions, refused with 422, not generated here.
    assume(not any(a in query and b in query for a, b in logs.EXCLUSIVE))
    excluded = [positive_data_acceptance] if case.operation.label in DOCUMENTS | TIMED else []
    if case.operation.label in FREE_FORM:
        excluded.append(negative_data_rejection)
    case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN}"}, checks=ALL_CHECKS,
                           excluded_checks=excluded)


def test_a_ticket_names_every_event_stream_route_by_its_declared_pattern():
    """POST /api/stream-tickets declares the paths it takes: each event
    stream route, its ids filled in, fits that declaration."""
    pattern = re.compile(mi.type_info(StreamPath).pattern)
    streams = [e.path for e in _app.state.endpoints if e.stream and e.method == "GET"]
    assert streams
    for path in streams:
        filled = re.sub(r"\{[^}]+\}", "some-id_1", path)
        assert pattern.match(filled), path
