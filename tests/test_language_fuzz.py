"""The workflow language at the document level, fuzzed (hypothesis): random
documents with expressions in every key that takes them (and in some that
do not) are either accepted or refused with every problem placed (field,
line and column), never anything else; and an accepted one, started and
fed random outputs, is decided without anything but a verdict (its jobs
queued, skipped, failed with a reason, or expanded). Over HTTP, such a
document is a 201 or a 422, never a 5xx.

Bounded: a fixed number of examples, no deadline, no example database."""

from __future__ import annotations

import asyncio
import json

import fakeredis
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.definitions import DefinitionError, parse_workflow
from server.store import Store
from tests.helpers import lease_id

BOUNDED = settings(max_examples=300, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

ATOMS = [
    "needs.a.outputs.x", "needs.a.result", "needs.a.outputs", "needs", "inputs.v", "inputs", "matrix.os",
    "matrix", "run.number", "run.tags.k", "run.nope", "strategy.job-index", "env.X", "steps.s.outputs.o",
    "steps.s.outcome", "github.sha", "secrets.T", "vars.V", "needs.zz.result", "x", "'s'", "'a''b'", "1", "-2.5",
    "true", "null", "success()", "failure()", "always()", "cancelled()", "contains(needs.a.outputs.x, 'y')",
    "format('{0}-{1}', inputs.v)", "fromJSON(needs.a.outputs.x)", "toJSON(matrix)", "join(inputs, ',')",
    "startsWith(inputs.v, 'a')", "case(true, 1, 2)", "hashFiles('x')",
]
OPERATORS = ["==", "!=", "&&", "||", "<", ">=", "!"]
JUNK = ["(", ")", "[", "]", "'", "${{", "}}", "{", "#", ":", ".", "*", ",", " ", "\n", "é", '"']

_VALID = [a for a in ATOMS if not a.startswith(("github", "secrets", "vars", "x", "hashFiles", "run.nope", "needs.zz"))]
# well formed (an operand, or two with an operator) more often than not, so that
# many documents are accepted and go on to be decided
WELL_FORMED = st.one_of(
    st.sampled_from(_VALID),
    st.tuples(st.sampled_from(_VALID), st.sampled_from(["==", "!=", "&&", "||", "<"]),
              st.sampled_from(_VALID)).map(" ".join),
)
EXPRESSIONS = WELL_FORMED | st.lists(st.sampled_from(ATOMS) | st.sampled_from(OPERATORS) | st.sampled_from(JUNK),
                                     min_size=1, max_size=7).map(" ".join)
TEMPLATES = st.one_of(
    EXPRESSIONS.map(lambda e: "${{ " + e + " }}"),
    st.tuples(st.text(max_size=5), EXPRESSIONS, st.text(max_size=5)).map(lambda t: f"{t[0]}${{{{ {t[1]} }}}}{t[2]}"),
    st.text(max_size=12),
    EXPRESSIONS,
)
MATRICES = st.one_of(
    st.fixed_dictionaries({"os": st.lists(st.sampled_from(["linux", "mac", 1, True]), max_size=3)},
                          optional={"include": st.lists(st.dictionaries(st.sampled_from(["os", "x"]),
                                                                        st.sampled_from(["linux", 2]),
                                                                        max_size=2), max_size=2),
                                    "exclude": st.lists(st.fixed_dictionaries({"os": st.just("mac")}), max_size=1)}),
    TEMPLATES,
)
OUTPUTS = st.dictionaries(st.sampled_from(["x", "y"]),
                          st.sampled_from(["", "yes", "linux", '{"os": ["a", "b"]}', '["a"]', "not json", "1"]),
                          max_size=2)


@st.composite
def documents(draw) -> str:
    b: dict = {"needs": "a"}
    keys = draw(st.lists(st.sampled_from(["if", "name", "runs-on", "env", "timeout-minutes", "continue-on-error",
                                          "strategy", "outputs", "steps"]), unique=True, max_size=5))
    for key in keys:
        if key == "if":
            b["if"] = draw(TEMPLATES | st.booleans())
        elif key == "env":
            b["env"] = {"V": draw(TEMPLATES)}
        elif key == "strategy":
            b["strategy"] = {"matrix": draw(MATRICES)}
            if draw(st.booleans()):
                b["strategy"]["max-parallel"] = draw(st.sampled_from([1, 2, "${{ inputs.n }}"]))
        elif key == "outputs":
            b["outputs"] = {"o": draw(TEMPLATES)}
        elif key == "steps":
            b["steps"] = [{"id": "s", "run": "make"},
                          {"run": "make", draw(st.sampled_from(["if", "name", "working-directory"])): draw(TEMPLATES)}]
        else:
            b[key] = draw(TEMPLATES)
    if "steps" not in b:
        b["run"] = draw(st.sampled_from(["make", "make", "make", "echo ${{ inputs.v }}"]))
    document: dict = {"jobs": {"a": {"run": "make"}, "b": b}}
    if draw(st.booleans()):
        document["run-name"] = draw(TEMPLATES)
    if draw(st.booleans()):
        document["env"] = {"W": draw(TEMPLATES)}
    # JSON is YAML: every string a double-quoted scalar, positioned like any other
    return json.dumps(document, indent=2)


def parse(text: str):
    return parse_workflow(text.encode(), "application/yaml")


@BOUNDED
@given(documents())
def test_a_document_is_accepted_or_refused_with_every_problem_placed(text):
    try:
        parse(text)
    except DefinitionError as err:
        assert err.problems
        for problem in err.problems:
            assert problem["message"] and problem["field"]
            if problem["field"] != "document" or not problem["message"].endswith("not shown"):
                assert problem["line"] >= 1 and problem["column"] >= 1, problem


async def _run(spec, outputs: dict) -> None:
    redis = fakeredis.FakeAsyncRedis(decode_responses=True)
    store = Store(redis)
    try:
        await store.create_workflow(spec, "wf", run=True)
        run = await store.latest_run("wf")
        got = await store.claim("w", ["linux", "mac"], 30, lease_id())
        if got is not None and got.job.job_id == "a":
            await store.complete(got.lease.lease_id, outputs)
        for job in (await store.get_run(run)).jobs:
            assert job.status in ("queued", "running", "success", "failure", "skipped"), job
            if job.status == "failure":
                assert job.error, job
        assert await redis.zcard(store.prefix + "deciding") == 0
    finally:
        await redis.aclose()


@BOUNDED
@given(documents(), OUTPUTS)
def test_an_accepted_document_is_decided_whatever_its_values(text, outputs):
    try:
        spec = parse(text)
    except DefinitionError:
        return
    asyncio.run(_run(spec, outputs))


async def test_over_http_a_fuzzed_document_is_201_or_422(app):
    transport = httpx.ASGITransport(app=app)
    seen = set()
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as api:
        for text in _samples(60):
            resp = await api.post("/api/workflows?run=true", content=text.encode(),
                                  headers={"content-type": "application/yaml"})
            assert resp.status_code in (201, 422), (resp.status_code, resp.text, text)
            seen.add(resp.status_code)
    assert seen == {201, 422}


def _samples(n: int) -> list[str]:
    found: list[str] = []

    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(documents())
    def collect(text):
        found.append(text)

    collect()
    return found
