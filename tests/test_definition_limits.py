"""What a workflow document may expand to: aliases counted as what they stand
for, and each field's length, refused before anything is encoded or stored.

The numbers are spelled out here rather than imported from server.limits: they
are the contract the manual documents (docs/workflow-yaml.md), and a test should notice if one moves.
"""

from __future__ import annotations

import json

import pytest
import yaml

from server.definitions import DefinitionError, parse_workflow

YAML = "application/yaml"
JSON = "application/json"

EXPANDED_CHARS = 8 * 1024 * 1024
VALUES = 200_000
NAME = 256
SCRIPT = 65_536
STEPS = 262_144
ENV_VALUE = 65_536
ENV_ENTRIES = 256
ENV_NAME = 256
TRIGGER = 1024


def refused(body: str, content_type: str = YAML) -> list[dict]:
    with pytest.raises(DefinitionError) as info:
        parse_workflow(body.encode(), content_type)
    return info.value.problems


@pytest.fixture
def no_construction(monkeypatch):
    """Fails the test if PyYAML builds Python data from the document at all."""

    def construct_document(self, node):
        raise AssertionError("the document was constructed; it should have been refused before")

    monkeypatch.setattr(yaml.constructor.BaseConstructor, "construct_document", construct_document)


# ---- aliases count as what they expand to ----------------------------------------


def test_alias_bomb_is_refused_by_its_expanded_size_before_construction(no_construction):
    # 1.1 MB of text that stood for 3 GB of env values: it crashed a server.
    lines = ["name: &r " + "x" * (1024 * 1024), "jobs:", "  a:", "    run: make", "    env:"]
    lines += [f"      V{i}: *r" for i in range(3000)]
    problems = refused("\n".join(lines) + "\n")
    assert len(problems) == 1, problems
    problem = problems[0]
    assert problem["field"] == "document"
    assert str(EXPANDED_CHARS) in problem["message"] and "alias" in problem["message"]
    # Positioned at the alias that crossed the limit: the name and seven copies
    # make 8 MiB, and the keys before them tip it over at V6, on line 12.
    assert (problem["line"], problem["column"]) == (12, len("      V6: ") + 1)


def test_nested_alias_billion_laughs_is_refused_by_its_value_count(no_construction):
    # Nine levels of ten aliases each: a billion values from 91 written ones.
    # `on:` ignores what its events map to, so nothing downstream would notice.
    lines = ["on:", '  lol0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 9):
        lines.append(f"  lol{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    lines += ["jobs:", "  a: {run: make}"]
    problems = refused("\n".join(lines) + "\n")
    assert len(problems) == 1, problems
    assert problems[0]["field"] == "document"
    assert str(VALUES) in problems[0]["message"] and "alias" in problems[0]["message"]
    # lol5 is the first level whose expansion (10^5 lols, plus lists) passes 200,000
    assert problems[0]["line"] == 7


def test_merge_keys_count_every_copy(no_construction):
    # Merge keys are aliases too: each `<<: *big` brings the whole mapping along.
    big = "      BIG: &big {" + ", ".join(f"K{i}: {'v' * 1000}" for i in range(1000)) + "}"
    lines = ["jobs:", "  a:", "    run: make", "    env:", big]
    lines += ["on:"] + [f"  e{i}: {{<<: *big}}" for i in range(20)]
    problems = refused("\n".join(lines) + "\n")
    assert [p["field"] for p in problems] == ["document"]
    assert str(EXPANDED_CHARS) in problems[0]["message"]


def test_small_aliases_for_reuse_are_still_accepted():
    spec = parse_workflow(
        b"""\
jobs:
  a:
    run: &script make all
    env: &common {A: "1", B: two}
    labels: &linux [linux, x64]
  b:
    run: *script
    env: *common
    labels: *linux
    needs: a
  c:
    env: *common
    steps:
      - run: *script
""",
        YAML,
    )
    assert [job.env for job in spec.jobs] == [{"A": "1", "B": "two"}] * 3
    assert [job.command for job in spec.jobs] == ["make all"] * 3
    assert spec.jobs[1].labels == ["linux", "x64"]


def _exact_size_document(extra: int) -> str:
    """A document whose scalar text, aliases expanded, is EXPANDED_CHARS + extra characters.

    The keys and small values add up to `fixed` characters; eight copies of
    the anchored `push` filter make up the rest, and `name` absorbs the remainder.
    The last alias comes last, so it is what crosses the limit.
    """
    fixed = len("jobs" + "a" + "run" + "x" + "name" + "on" + "push" + "pull_request")
    chunk, remainder = divmod(EXPANDED_CHARS - fixed, 8)
    name = "n" * (remainder + extra)
    assert name, "the name must not be empty"
    return (
        f"jobs: {{a: {{run: x}}}}\nname: {name}\n"
        f"on:\n  push: &r {'p' * chunk}\n  pull_request: [*r, *r, *r, *r, *r, *r, *r]\n"
    )


def test_expanded_size_exactly_at_the_limit_is_accepted():
    spec = parse_workflow(_exact_size_document(0).encode(), YAML)
    assert spec.trigger == "push,pull_request"


def test_expanded_size_one_over_the_limit_is_refused():
    problems = refused(_exact_size_document(1))
    assert [p["field"] for p in problems] == ["document"]
    assert str(EXPANDED_CHARS) in problems[0]["message"]
    assert (problems[0]["line"], problems[0]["column"]) == (5, len("  pull_request: [*r, *r, *r, *r, *r, *r, ") + 1)


def test_a_plain_document_over_the_text_limit_is_refused_too():
    # No alias, so the body limit would catch it over HTTP; WORKFLOWS_DIR files have none.
    body = "jobs:\n  a:\n    run: make\non:\n" + "".join(f"  e{i}: {'x' * 1024 * 1024}\n" for i in range(9))
    problems = refused(body)
    assert [p["field"] for p in problems] == ["document"]
    assert str(EXPANDED_CHARS) in problems[0]["message"] and "alias" not in problems[0]["message"]


def test_aliases_count_toward_the_value_limit():
    # 150,000 written values stay under 200,000; their alias doubles them.
    body = "jobs: {a: {run: make}}\non:\n  push: &many [" + "1, " * 150_000 + "]\n  pull_request: *many\n"
    problems = refused(body)
    assert [p["field"] for p in problems] == ["document"]
    assert str(VALUES) in problems[0]["message"]
    assert problems[0]["line"] == 4


def test_a_recursive_alias_is_not_an_expansion():
    # `&a [*a]` is a list that contains itself: refused as a bad value, not counted forever.
    problems = refused("on: &a [*a]\njobs: {a: {run: make}}\n")
    assert [p["field"] for p in problems] == ["on"]


# ---- per-field limits, in both shapes ---------------------------------------------
# Each case: the field path in the document (YAML) shape, in the seed (JSON) shape,
# the limit, and how to build a workflow whose field has a given size.


def _document(size: int, field: str) -> dict:
    job: dict = {"run": "make"}
    doc: dict = {"name": "w", "jobs": {"a": job}}
    if field == "name":
        doc["name"] = "n" * size
    elif field == "on":
        doc["on"] = "p" * size
    elif field == "on-list":
        # joined with commas: two events of (size - 1) characters together
        doc["on"] = ["p" * (size // 2), "q" * (size - 1 - size // 2)]
    elif field == "job-name":
        job["name"] = "n" * size
    elif field == "run":
        job["run"] = "r" * size
    elif field == "step-name":
        job.pop("run")
        job["steps"] = [{"name": "n" * size, "run": "make"}]
    elif field == "step-run":
        job.pop("run")
        job["steps"] = [{"run": "r" * size}]
    elif field == "steps":
        # four steps joined by three newlines
        job.pop("run")
        body = size - 3
        job["steps"] = [{"name": f"s{i}", "run": "r" * (body // 4 + (i < body % 4))} for i in range(4)]
    elif field == "env-value":
        job["env"] = {"V": "v" * size}
    elif field == "env-entries":
        job["env"] = {f"V{i}": "1" for i in range(size)}
    elif field == "env-name":
        job["env"] = {"V" * size: "1"}
    return doc


def _seed(doc: dict) -> dict:
    """The same workflow in the seed shape: jobs a list, run spelled command, on spelled trigger."""
    seed: dict = {"name": doc["name"], "jobs": []}
    if "on" in doc:
        seed["trigger"] = doc["on"] if isinstance(doc["on"], str) else ",".join(doc["on"])
    for job_id, job in doc["jobs"].items():
        seed_job = {"id": job_id, **job}
        if "run" in seed_job:
            seed_job["command"] = seed_job.pop("run")
        seed["jobs"].append(seed_job)
    return seed


LIMITS = [
    # (case, document-shape field, seed-shape field, limit, words in the message)
    ("name", "name", "name", NAME, "name"),
    ("on", "on", "trigger", TRIGGER, "trigger"),
    ("on-list", "on", "trigger", TRIGGER, "trigger"),
    ("job-name", "jobs.a.name", "jobs[0].name", NAME, "name"),
    ("run", "jobs.a.run", "jobs[0].command", SCRIPT, "one script"),
    ("step-name", "jobs.a.steps[0].name", "jobs[0].steps[0].name", NAME, "name"),
    ("step-run", "jobs.a.steps[0].run", "jobs[0].steps[0].run", SCRIPT, "one script"),
    ("steps", "jobs.a.steps", "jobs[0].steps", STEPS, "steps"),
    ("env-value", "jobs.a.env.V", "jobs[0].env.V", ENV_VALUE, "environment"),
    ("env-entries", "jobs.a.env", "jobs[0].env", ENV_ENTRIES, "environment"),
]


def _yaml_text(doc: dict) -> str:
    return yaml.safe_dump(doc, width=float("inf"), sort_keys=False)


@pytest.mark.parametrize(("case", "field", "seed_field", "limit", "words"), LIMITS, ids=[c[0] for c in LIMITS])
def test_field_exactly_at_its_limit_is_accepted(case, field, seed_field, limit, words):
    doc = _document(limit, case)
    yaml_spec = parse_workflow(_yaml_text(doc).encode(), YAML)
    json_spec = parse_workflow(json.dumps(_seed(doc)).encode(), JSON)
    assert yaml_spec == json_spec


@pytest.mark.parametrize(("case", "field", "seed_field", "limit", "words"), LIMITS, ids=[c[0] for c in LIMITS])
def test_field_one_over_its_limit_is_refused_in_yaml(case, field, seed_field, limit, words):
    problems = refused(_yaml_text(_document(limit + 1, case)))
    assert [p["field"] for p in problems] == [field], problems
    message = problems[0]["message"]
    assert f" {limit} " in message and words in message, message
    assert problems[0]["line"] >= 1 and problems[0]["column"] >= 1


@pytest.mark.parametrize(("case", "field", "seed_field", "limit", "words"), LIMITS, ids=[c[0] for c in LIMITS])
def test_field_one_over_its_limit_is_refused_in_seed_json(case, field, seed_field, limit, words):
    problems = refused(json.dumps(_seed(_document(limit + 1, case))), JSON)
    assert [p["field"] for p in problems] == [seed_field], problems
    message = problems[0]["message"]
    assert f" {limit} " in message and words in message, message


def test_script_limit_message_names_the_limit():
    problems = refused(_yaml_text(_document(SCRIPT + 1, "run")))
    assert problems[0]["message"] == "longer than 65536 characters (limit for one script)"


@pytest.mark.parametrize("content_type", [YAML, JSON])
def test_env_name_limit(content_type):
    def body(size: int) -> str:
        doc = _document(size, "env-name")
        return _yaml_text(doc) if content_type == YAML else json.dumps(_seed(doc))

    parse_workflow(body(ENV_NAME).encode(), content_type)
    problems = refused(body(ENV_NAME + 1), content_type)
    prefix = "jobs.a.env." if content_type == YAML else "jobs[0].env."
    assert [p["field"] for p in problems] == [prefix + "V" * (ENV_NAME + 1)]
    assert f" {ENV_NAME} " in problems[0]["message"]


def test_each_env_value_is_limited_not_only_the_first():
    doc = _document(1, "env-value")
    doc["jobs"]["a"]["env"] = {"A": "1", "B": "b" * (ENV_VALUE + 1), "C": "c" * (ENV_VALUE + 1)}
    problems = refused(_yaml_text(doc))
    assert [p["field"] for p in problems] == ["jobs.a.env.B", "jobs.a.env.C"]


def test_a_default_step_name_is_cut_to_the_name_limit():
    # The name defaults to the run's first line, which may be far longer than a name may be.
    doc = _document(1, "step-run")
    doc["jobs"]["a"]["steps"] = [{"run": "  " + "r" * 1000 + "\nmore"}]
    spec = parse_workflow(_yaml_text(doc).encode(), YAML)
    assert spec.jobs[0].steps[0].name == "r" * NAME


def test_field_limits_are_checked_with_every_other_problem():
    doc = _document(1, "run")
    doc["jobs"]["a"]["run"] = "r" * (SCRIPT + 1)
    doc["jobs"]["a"]["retries"] = "many"
    doc["name"] = "n" * (NAME + 1)
    problems = refused(_yaml_text(doc))
    assert sorted(p["field"] for p in problems) == ["jobs.a.retries", "jobs.a.run", "name"]


def test_limits_module_states_the_documented_numbers():
    from server import limits

    assert (limits.MAX_EXPANDED_CHARS, limits.MAX_YAML_VALUES, limits.MAX_JOBS) == (EXPANDED_CHARS, VALUES, 1000)
    assert (limits.MAX_NAME_CHARS, limits.MAX_SCRIPT_CHARS, limits.MAX_STEPS_CHARS) == (NAME, SCRIPT, STEPS)
    assert (limits.MAX_ENV_VALUE_CHARS, limits.MAX_ENV_ENTRIES, limits.MAX_ENV_NAME_CHARS) == (
        ENV_VALUE,
        ENV_ENTRIES,
        ENV_NAME,
    )
    assert limits.MAX_TRIGGER_CHARS == TRIGGER


def test_a_jobs_whole_env_is_limited():
    # five values each under the per-value bound, together over the job's total
    doc = _document(1, "env-value")
    doc["jobs"]["a"]["env"] = {f"V{i}": "v" * 60_000 for i in range(5)}
    problems = refused(_yaml_text(doc))
    assert [p["field"] for p in problems] == ["jobs.a.env"] and "262144" in problems[0]["message"]
    doc["jobs"]["a"]["env"] = {f"V{i}": "v" * 60_000 for i in range(4)}
    parse_workflow(_yaml_text(doc).encode(), YAML)


@pytest.mark.parametrize("content_type", [YAML, JSON])
def test_labels_per_job_are_limited(content_type):
    def body(n: int) -> str:
        labels = [f"l{i}" for i in range(n)]
        if content_type == YAML:
            return f"jobs:\n  a:\n    run: make\n    labels: [{', '.join(labels)}]\n"
        return json.dumps({"name": "x", "jobs": [{"id": "a", "command": "make", "required_labels": labels}]})

    parse_workflow(body(32).encode(), content_type)
    problems = refused(body(33), content_type)
    assert "more than 32 labels" in problems[0]["message"]
