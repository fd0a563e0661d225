"""Workflow documents (both shapes, YAML and JSON) -> WorkflowSpec, and every way one can be wrong."""

from __future__ import annotations

import json
import textwrap

import msgspec
import pytest

from server.definitions import DefinitionError, load_workflow_file, parse_workflow
from server.models import BackoffObject, ExponentialParams, FixedParams, JobSpec, Step, WorkflowSpec

YAML = "application/yaml"
JSON = "application/json"


def from_yaml(text: str, **kwargs) -> WorkflowSpec:
    return parse_workflow(textwrap.dedent(text).encode(), YAML, **kwargs)


def from_json(doc: object) -> WorkflowSpec:
    return parse_workflow(json.dumps(doc).encode(), JSON)


def problems_of(body: str | object, content_type: str = YAML) -> list[dict]:
    raw = textwrap.dedent(body) if isinstance(body, str) else json.dumps(body)
    with pytest.raises(DefinitionError) as info:
        parse_workflow(raw.encode(), content_type)
    return info.value.problems


def messages_for(problems: list[dict], field: str) -> list[str]:
    found = [p["message"] for p in problems if p["field"] == field]
    assert found, f"no problem for {field!r} in {problems}"
    return found


def job(spec: WorkflowSpec, job_id: str) -> JobSpec:
    return next(j for j in spec.jobs if j.id == job_id)


CI_YAML = """\
    name: CI
    on: push
    jobs:
      test:
        run: pytest -q
        retries: 2
        backoff: {exponential: {base_secs: 2, max_secs: 60}}
      build:
        needs: [test]
        labels: [linux, docker]
        env: {A: "1", B: "${{ needs.test.outputs.version }}"}
        timeout-minutes: 10
        priority: 5
        steps:
          - name: compile
            run: make
          - run: make dist
    """

CI_EXPECTED = WorkflowSpec(
    name="CI",
    trigger="push",
    jobs=[
        JobSpec(
            id="test",
            name="test",
            command="pytest -q",
            max_retries=2,
            backoff=BackoffObject(Exponential=ExponentialParams(base_secs=2, max_secs=60)),
        ),
        JobSpec(
            id="build",
            name="build",
            command="make\nmake dist",
            steps=[Step(name="compile", run="make"), Step(name="make dist", run="make dist")],
            needs=["test"],
            labels=["docker", "linux"],
            env={"A": "1", "B": "${{ needs.test.outputs.version }}"},
            timeout_secs=600,
            priority=5,
        ),
    ],
)


# ---- the document shape -------------------------------------------------------


def test_yaml_document_shape_normalises_every_field():
    assert from_yaml(CI_YAML) == CI_EXPECTED


def test_json_document_shape_gives_the_same_spec():
    doc = {
        "name": "CI",
        "on": "push",
        "jobs": {
            "test": {
                "run": "pytest -q",
                "retries": 2,
                "backoff": {"exponential": {"base_secs": 2, "max_secs": 60}},
            },
            "build": {
                "needs": ["test"],
                "labels": ["linux", "docker"],
                "env": {"A": "1", "B": "${{ needs.test.outputs.version }}"},
                "timeout-minutes": 10,
                "priority": 5,
                "steps": [{"name": "compile", "run": "make"}, {"run": "make dist"}],
            },
        },
    }
    assert from_json(doc) == CI_EXPECTED


def test_optional_fields_take_their_defaults():
    spec = from_yaml(
        """\
        jobs:
          only:
            run: echo hi
        """
    )
    assert spec == WorkflowSpec(
        name="workflow", trigger="", jobs=[JobSpec(id="only", name="only", command="echo hi")]
    )


def test_null_values_mean_absent():
    spec = from_yaml(
        """\
        name: n
        on:
        jobs:
          a:
            run: x
            needs:
            env:
            timeout-minutes:
        """
    )
    assert spec.trigger == ""
    assert spec.jobs == [JobSpec(id="a", name="a", command="x")]


def test_jobs_keep_document_order():
    spec = from_yaml(
        """\
        jobs:
          zeta: {run: z}
          alpha: {run: a, needs: zeta}
          mid: {run: m}
        """
    )
    assert [j.id for j in spec.jobs] == ["zeta", "alpha", "mid"]


@pytest.mark.parametrize(
    ("on", "trigger"),
    [
        ("push", "push"),
        ("[push, pull_request]", "push,pull_request"),
        ("{push: {branches: [main]}, workflow_dispatch: null}", "push,workflow_dispatch"),
    ],
)
def test_on_becomes_the_trigger(on, trigger):
    # PyYAML's YAML 1.1 would read the key `on` as the boolean True.
    spec = from_yaml(f"on: {on}\njobs: {{a: {{run: x}}}}\n")
    assert spec.trigger == trigger


def test_yes_no_on_off_are_strings_and_only_true_false_are_booleans():
    spec = from_yaml(
        """\
        jobs:
          a:
            run: x
            env: {A: yes, B: no, C: on, D: off, E: true, F: False, G: 2024-01-01}
        """
    )
    assert spec.jobs[0].env == {
        "A": "yes",
        "B": "no",
        "C": "on",
        "D": "off",
        "E": "true",
        "F": "false",
        "G": "2024-01-01",
    }


def test_env_scalars_are_coerced_to_strings():
    spec = from_yaml(
        """\
        jobs:
          a:
            run: x
            env: {INT: 3, FLOAT: 1.5, BOOL: true, EMPTY: , TEXT: hi}
        """
    )
    assert spec.jobs[0].env == {"INT": "3", "FLOAT": "1.5", "BOOL": "true", "EMPTY": "", "TEXT": "hi"}


def test_needs_may_be_a_single_string_and_duplicates_collapse():
    spec = from_yaml(
        """\
        jobs:
          test: {run: t}
          lint: {run: l}
          build: {run: b, needs: test}
          ship: {run: s, needs: [lint, test, lint]}
        """
    )
    assert job(spec, "build").needs == ["test"]
    assert job(spec, "ship").needs == ["lint", "test"]


def test_steps_job_command_is_the_runs_joined_and_step_names_default():
    spec = from_yaml(
        """\
        jobs:
          a:
            steps:
              - run: |

                  ./configure --prefix=/usr
                  make
              - name: install
                run: make install
        """
    )
    a = spec.jobs[0]
    assert a.steps == [
        Step(name="./configure --prefix=/usr", run="\n./configure --prefix=/usr\nmake\n"),
        Step(name="install", run="make install"),
    ]
    assert a.command == "\n./configure --prefix=/usr\nmake\n\nmake install"


def test_run_job_has_no_steps():
    assert from_yaml("jobs: {a: {run: make}}").jobs[0].steps == []


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ("runs-on: ubuntu-latest", ["ubuntu-latest"]),
        ("runs-on: [linux, x64, linux]", ["linux", "x64"]),
        ("labels: gpu", ["gpu"]),
        ("labels: [zeta, alpha, zeta, arch=arm64]", ["alpha", "arch=arm64", "zeta"]),
    ],
)
def test_labels_and_runs_on_are_sorted_and_deduplicated(labels, expected):
    spec = from_yaml(f"jobs:\n  a:\n    run: x\n    {labels}\n")
    assert spec.jobs[0].labels == expected


@pytest.mark.parametrize(
    ("timeout", "seconds"),
    [
        ("timeout-minutes: 10", 600),
        ("timeout-minutes: 1.5", 90),
        ("timeout-minutes: 0.001", 1),
        ("timeout_secs: 45", 45),
    ],
)
def test_timeouts_become_whole_seconds(timeout, seconds):
    spec = from_yaml(f"jobs:\n  a:\n    run: x\n    {timeout}\n")
    assert spec.jobs[0].timeout_secs == seconds


def test_retries_alias_max_retries():
    assert from_yaml("jobs: {a: {run: x, max_retries: 4}}").jobs[0].max_retries == 4


FIXED_5 = BackoffObject(Fixed=FixedParams(delay_secs=5))
EXP_2_60 = BackoffObject(Exponential=ExponentialParams(base_secs=2, max_secs=60))


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        ("none", "None"),
        ("None", "None"),
        ("{fixed: {delay_secs: 5}}", FIXED_5),
        ("{exponential: {base_secs: 2, max_secs: 60}}", EXP_2_60),
        ('{"Fixed": {"delay_secs": 5}}', FIXED_5),
        ('{"Exponential": {"base_secs": 2, "max_secs": 60}}', EXP_2_60),
        ("{exponential: {base_secs: 0, max_secs: 0}}", BackoffObject(Exponential=ExponentialParams(0, 0))),
    ],
)
def test_backoff_forms(backoff, expected):
    spec = from_yaml(f"jobs:\n  a:\n    run: x\n    backoff: {backoff}\n")
    assert spec.jobs[0].backoff == expected


@pytest.mark.parametrize("content_type", ["text/yaml", "application/x-yaml", "text/x-yaml", "Application/YAML; charset=utf-8"])
def test_every_yaml_media_type_is_read_as_yaml(content_type):
    spec = parse_workflow(b"on: push\njobs: {a: {run: x}}\n", content_type)
    assert spec.trigger == "push"


@pytest.mark.parametrize("content_type", [None, JSON, "application/json; charset=utf-8", "text/plain"])
def test_anything_else_is_read_as_json(content_type):
    body = b'{"jobs": {"a": {"run": "x"}}}'
    assert parse_workflow(body, content_type).jobs[0].command == "x"


def test_json_content_type_is_strict_about_json():
    problems = problems_of("jobs: {a: {run: x}}\n", JSON)
    assert problems == [
        {"field": "document", "message": "invalid JSON: Expecting value", "line": 1, "column": 1}
    ]


# ---- the seed shape -------------------------------------------------------------

SEED_JOB_STATE = {
    "status": "queued",
    "duration_secs": None,
    "started_at": None,
    "output": None,
    "attempt": 0,
    "metadata": {"owner": "ci"},
    "ports": [{"id": "p1"}],
    "children": [],
    "collapsed": False,
}


def test_seed_shape_accepts_full_seed_job_objects():
    doc = {
        "name": "ci",
        "trigger": "manual",
        "jobs": [
            {
                "id": "test",
                "name": "Unit tests",
                "command": "cargo test",
                "depends_on": [],
                "required_labels": ["docker"],
                "max_retries": 1,
                **SEED_JOB_STATE,
            },
            {
                "id": "build",
                "name": "Build",
                "command": "cargo build",
                "depends_on": ["test"],
                "required_labels": [],
                "max_retries": 0,
                **SEED_JOB_STATE,
            },
        ],
    }
    assert from_json(doc) == WorkflowSpec(
        name="ci",
        trigger="manual",
        jobs=[
            JobSpec(id="test", name="Unit tests", command="cargo test", labels=["docker"], max_retries=1),
            JobSpec(id="build", name="Build", command="cargo build", needs=["test"]),
        ],
    )


def test_seed_shape_extensions_and_defaults():
    doc = {
        "name": "ext",
        "jobs": [
            {
                "id": "a",
                "command": "",
                "steps": [{"name": "one", "run": "echo 1"}, {"run": "echo 2"}],
                "env": {"N": 1},
                "timeout_secs": 30,
                "backoff": {"Fixed": {"delay_secs": 5}},
                "priority": -3,
            },
            {"id": "b", "command": "true", "depends_on": ["a"], "backoff": "None"},
        ],
    }
    spec = from_json(doc)
    assert spec.trigger == ""
    assert spec.jobs == [
        JobSpec(
            id="a",
            name="a",
            command="echo 1\necho 2",
            steps=[Step(name="one", run="echo 1"), Step(name="echo 2", run="echo 2")],
            env={"N": "1"},
            timeout_secs=30,
            backoff=FIXED_5,
            priority=-3,
        ),
        JobSpec(id="b", name="b", command="true", needs=["a"]),
    ]


def test_seed_shape_in_yaml():
    spec = from_yaml(
        """\
        name: seed
        trigger: push
        jobs:
          - id: a
            command: make
            required_labels: [linux]
            backoff: {exponential: {base_secs: 1, max_secs: 8}}
        """
    )
    assert spec == WorkflowSpec(
        name="seed",
        trigger="push",
        jobs=[
            JobSpec(
                id="a",
                name="a",
                command="make",
                labels=["linux"],
                backoff=BackoffObject(Exponential=ExponentialParams(base_secs=1, max_secs=8)),
            )
        ],
    )


def test_our_own_status_job_objects_can_be_posted_back():
    status_job = {
        "id": "a",
        "name": "a",
        "status": "failure",
        "command": "make",
        "depends_on": [],
        "required_labels": [],
        "max_retries": 0,
        "attempt": 1,
        "outputs": {"k": "v"},
        "error": "exit 1",
        "progress": 0.5,
        "worker_id": "w1",
        "finished_at": 1.0,
    }
    assert from_json({"name": "again", "jobs": [status_job]}).jobs == [JobSpec(id="a", name="a", command="make")]


# ---- load_workflow_file -----------------------------------------------------------


@pytest.mark.parametrize("suffix", [".yml", ".yaml"])
def test_load_yaml_file_names_the_workflow_after_the_stem(tmp_path, suffix):
    path = tmp_path / f"nightly{suffix}"
    path.write_text("on: {schedule: [{cron: '0 3 * * *'}]}\njobs: {a: {run: x}}\n")
    spec = load_workflow_file(path)
    assert (spec.name, spec.trigger, spec.jobs[0].command) == ("nightly", "schedule", "x")
    assert spec.schedules[0].cron == "0 3 * * *"


def test_load_json_file_keeps_a_given_name(tmp_path):
    path = tmp_path / "deploy.json"
    path.write_text(json.dumps({"name": "Deploy", "jobs": [{"id": "d", "command": "./deploy"}]}))
    spec = load_workflow_file(path)
    assert (spec.name, spec.jobs[0].id) == ("Deploy", "d")


def test_load_json_file_default_name_is_the_stem(tmp_path):
    path = tmp_path / "release.json"
    path.write_text(json.dumps({"jobs": {"r": {"run": "x"}}}))
    assert load_workflow_file(path).name == "release"


def test_load_file_with_an_unknown_suffix_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("jobs: {a: {run: x}}")
    with pytest.raises(DefinitionError) as info:
        load_workflow_file(path)
    assert info.value.problems[0]["field"] == "document"
    assert "'.txt'" in info.value.problems[0]["message"]


def test_load_file_problems_carry_yaml_lines(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("jobs:\n  a:\n    run: x\n    needs: [b]\n")
    with pytest.raises(DefinitionError) as info:
        load_workflow_file(path)
    assert info.value.problems == [
        {"field": "jobs.a.needs", "message": "unknown job 'b'", "line": 4, "column": 5}
    ]


# ---- syntax ----------------------------------------------------------------------


def test_yaml_syntax_error_has_line_and_column():
    problems = problems_of("name: x\njobs:\n  a: {run: [1, 2}\n")
    assert len(problems) == 1
    assert problems[0]["field"] == "document"
    assert problems[0]["message"].startswith("invalid YAML: ")
    assert (problems[0]["line"], problems[0]["column"]) == (3, 17)


def test_yaml_disallowed_character_has_line_and_column():
    problems = problems_of("name: x\njobs: \x07\n")
    assert (problems[0]["field"], problems[0]["line"], problems[0]["column"]) == ("document", 2, 7)
    assert "control characters" in problems[0]["message"]


def test_yaml_unknown_tag_is_refused_with_position():
    problems = problems_of("jobs:\n  a: !!python/object:os.system {run: x}\n")
    assert problems[0]["line"] == 2
    assert "constructor" in problems[0]["message"]


def test_several_yaml_documents_are_refused():
    problems = problems_of("jobs: {a: {run: x}}\n---\njobs: {b: {run: y}}\n")
    assert problems[0]["line"] == 2
    assert "single document" in problems[0]["message"]


def test_json_syntax_error_has_line_and_column():
    problems = problems_of('{\n  "jobs": {\n    "a": {"run": "x",}\n  }\n}', JSON)
    assert problems == [
        {
            "field": "document",
            "message": "invalid JSON: Expecting property name enclosed in double quotes",
            "line": 3,
            "column": 22,
        }
    ]


def test_json_nan_is_refused():
    problems = problems_of('{"jobs": {"a": {"run": "x", "timeout-minutes": NaN}}}', JSON)
    assert problems == [{"field": "document", "message": "invalid JSON: NaN is not a JSON value"}]


def test_body_that_is_not_utf8_is_refused():
    with pytest.raises(DefinitionError) as info:
        parse_workflow(b"jobs: {a: {run: \xff}}", YAML)
    assert info.value.problems == [
        {"field": "document", "message": "not UTF-8 text (bad byte at offset 16)"}
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ("[" * 100_000, JSON, "invalid JSON: nested too deeply"),
        # libyaml's composer would crash the process on this, not raise
        ("[" * 100_000, YAML, "nested more than 64 levels deep"),
        ("- " * 100_000, YAML, "nested more than 64 levels deep"),
        ("jobs: [" + "1, " * 200_001 + "]", YAML, "more than 200000 values"),
    ],
)
def test_absurd_documents_are_a_problem_not_a_crash(body, content_type, message):
    problems = problems_of(body, content_type)
    assert [(p["field"], p["message"]) for p in problems] == [("document", message)]


@pytest.mark.parametrize(
    ("value", "tag"),
    [("!!int abc", "!!int"), ("!!bool maybe", "!!bool"), ("!!timestamp soon", "!!timestamp"), ("1" * 5000, "!!int")],
)
def test_bad_yaml_scalars_are_positioned_problems(value, tag):
    problems = problems_of(f"jobs:\n  a:\n    run: x\n    retries: {value}\n")
    assert problems == [
        {"field": "document", "message": f"invalid YAML: not a valid {tag}", "line": 4, "column": 14}
    ]


def test_yaml_anchors_and_merge_keys_work():
    spec = from_yaml(
        """\
        jobs:
          test: &defaults
            run: pytest
            labels: [linux]
            retries: 1
          lint:
            <<: *defaults
            run: ruff check
        """
    )
    assert job(spec, "lint") == JobSpec(id="lint", name="lint", command="ruff check", labels=["linux"], max_retries=1)


def test_duplicate_yaml_keys_are_reported_with_their_line():
    problems = problems_of(
        """\
        name: a
        jobs:
          test:
            run: x
          build:
            run: y
            run: z
          test:
            run: again
        name: b
        """
    )
    assert sorted((p["field"], p["line"], p["message"]) for p in problems) == [
        ("jobs.build.run", 7, "duplicate key 'run' (first at line 6)"),
        ("jobs.test", 8, "duplicate key 'test' (first at line 3)"),
        ("name", 10, "duplicate key 'name' (first at line 1)"),
    ]


def test_duplicate_json_keys_are_reported():
    body = '{"jobs": {"a": {"run": "x"}, "a": {"run": "y"}}}'
    assert problems_of(body, JSON) == [{"field": "document", "message": "duplicate key 'a'"}]


# ---- validation -------------------------------------------------------------------

ONE_JOB = "jobs:\n  a:\n    run: x\n"


@pytest.mark.parametrize(
    ("yaml_text", "field", "fragment"),
    [
        # the document
        ("- a\n- b\n", "document", "must be a mapping"),
        ("", "document", "must be a mapping"),
        ("name: x\n", "jobs", "required"),
        ("jobs: {}\n", "jobs", "at least one job"),
        ("jobs: 3\n", "jobs", "list of jobs"),
        ("name: ''\n" + ONE_JOB, "name", "non-empty string"),
        ("name: [x]\n" + ONE_JOB, "name", "non-empty string"),
        ("on: 3\n" + ONE_JOB, "on", "event name"),
        ("on: [push, 3]\n" + ONE_JOB, "on", "event name"),
        ("on: push\ntrigger: push\n" + ONE_JOB, "trigger", "give on or trigger, not both"),
        ("jobz: 1\n" + ONE_JOB, "jobz", "unknown field (did you mean 'jobs'?)"),
        ("concurrency: 1\n" + ONE_JOB, "concurrency", "must be a group name, or a mapping"),
        # job ids and shapes
        ("jobs:\n  'bad id': {run: x}\n", "jobs.bad id", "invalid job id 'bad id'"),
        ("jobs:\n  -lead: {run: x}\n", "jobs.-lead", "invalid job id"),
        ("jobs:\n  'a:b': {run: x}\n", "jobs.a:b", "invalid job id"),
        ("jobs:\n  " + "x" * 129 + ": {run: x}\n", "jobs." + "x" * 129, "at most 128"),
        ("jobs:\n  1: {run: x}\n", "jobs.1", "must be strings"),
        ("jobs:\n  a: make\n", "jobs.a", "must be a mapping"),
        ("jobs:\n  a: {name: x}\n", "jobs.a.run", "required (or give steps)"),
        ("jobs:\n  a: {run: x, steps: [{run: y}]}\n", "jobs.a", "give run or steps, not both"),
        ("jobs:\n  a: {run: ''}\n", "jobs.a.run", "non-empty string"),
        ("jobs:\n  a: {run: '  '}\n", "jobs.a.run", "non-empty string"),
        ("jobs:\n  a: {run: [x]}\n", "jobs.a.run", "non-empty string"),
        ("jobs:\n  a: {run: x, name: ''}\n", "jobs.a.name", "non-empty string"),
        ("jobs:\n  a: {run: x, need: [b]}\n", "jobs.a.need", "unknown field (did you mean 'needs'?)"),
        ("jobs:\n  a: {run: x, depends_on: [b]}\n", "jobs.a.depends_on", "unknown field"),
        # needs
        ("jobs:\n  a: {run: x, needs: a}\n", "jobs.a.needs", "a job cannot need itself"),
        ("jobs:\n  a: {run: x, needs: {b: 1}}\n", "jobs.a.needs", "a string or a list of strings"),
        ("jobs:\n  a: {run: x, needs: [1]}\n", "jobs.a.needs[0]", "must be a string"),
        ("jobs:\n  test: {run: x}\n  b: {run: x, needs: [tset]}\n", "jobs.b.needs", "unknown job 'tset' (did you mean 'test'?)"),
        # retries and priority
        ("jobs:\n  a: {run: x, retries: true}\n", "jobs.a.retries", "an integer from 0 to 100"),
        ("jobs:\n  a: {run: x, retries: 101}\n", "jobs.a.retries", "an integer from 0 to 100"),
        ("jobs:\n  a: {run: x, retries: -1}\n", "jobs.a.retries", "an integer from 0 to 100"),
        ("jobs:\n  a: {run: x, retries: 1.5}\n", "jobs.a.retries", "an integer from 0 to 100"),
        ("jobs:\n  a: {run: x, retries: 1, max_retries: 2}\n", "jobs.a.max_retries", "give retries or max_retries, not both"),
        ("jobs:\n  a: {run: x, priority: 101}\n", "jobs.a.priority", "an integer from -100 to 100"),
        ("jobs:\n  a: {run: x, priority: high}\n", "jobs.a.priority", "an integer from -100 to 100"),
        # labels
        ("jobs:\n  a: {run: x, labels: ['a,b']}\n", "jobs.a.labels[0]", "invalid label 'a,b'"),
        ("jobs:\n  a: {run: x, runs-on: ubuntu latest}\n", "jobs.a.runs-on", "invalid label 'ubuntu latest'"),
        ("jobs:\n  a: {run: x, labels: ['" + "l" * 65 + "']}\n", "jobs.a.labels[0]", "invalid label"),
        ("jobs:\n  a: {run: x, labels: [3]}\n", "jobs.a.labels[0]", "must be a string"),
        ("jobs:\n  a: {run: x, labels: {linux: true}}\n", "jobs.a.labels", "a string or a list of strings"),
        ("jobs:\n  a: {run: x, labels: [l], runs-on: [l]}\n", "jobs.a.runs-on", "give labels or runs-on, not both"),
        # env
        ("jobs:\n  a: {run: x, env: [A]}\n", "jobs.a.env", "must be a mapping"),
        ("jobs:\n  a: {run: x, env: {A: {b: 1}}}\n", "jobs.a.env.A", "string, number or boolean"),
        ("jobs:\n  a: {run: x, env: {A: [1]}}\n", "jobs.a.env.A", "string, number or boolean"),
        ("jobs:\n  a: {run: x, env: {A-B: 1}}\n", "jobs.a.env.A-B", "environment variable name"),
        ("jobs:\n  a: {run: x, env: {1X: 1}}\n", "jobs.a.env.1X", "environment variable name"),
        # steps
        ("jobs:\n  a: {steps: []}\n", "jobs.a.steps", "non-empty list"),
        ("jobs:\n  a: {steps: make}\n", "jobs.a.steps", "non-empty list"),
        ("jobs:\n  a: {steps: [make]}\n", "jobs.a.steps[0]", "must be a mapping"),
        ("jobs:\n  a: {steps: [{uses: actions/checkout@v4}]}\n", "jobs.a.steps[0].uses", "rota does not support uses: rota runs no actions; give run:"),
        ("jobs:\n  a: {steps: [{name: x}]}\n", "jobs.a.steps[0].run", "required"),
        ("jobs:\n  a: {steps: [{run: ok}, {run: [x]}]}\n", "jobs.a.steps[1].run", "non-empty string"),
        ("jobs:\n  a: {steps: [{run: ok, name: ''}]}\n", "jobs.a.steps[0].name", "non-empty string"),
        ("jobs:\n  a: {steps: [{run: ok, with: {}}]}\n", "jobs.a.steps[0].with", "rota does not support with:"),
        ("jobs:\n  a: {steps: [{run: ok, wiht: {}}]}\n", "jobs.a.steps[0].wiht", "unknown field"),
        # timeouts
        ("jobs:\n  a: {run: x, timeout-minutes: 0}\n", "jobs.a.timeout-minutes", "above 0"),
        ("jobs:\n  a: {run: x, timeout-minutes: -5}\n", "jobs.a.timeout-minutes", "above 0"),
        ("jobs:\n  a: {run: x, timeout-minutes: true}\n", "jobs.a.timeout-minutes", "above 0"),
        ("jobs:\n  a: {run: x, timeout-minutes: .nan}\n", "jobs.a.timeout-minutes", "above 0"),
        ("jobs:\n  a: {run: x, timeout-minutes: .inf}\n", "jobs.a.timeout-minutes", "at most 10080"),
        ("jobs:\n  a: {run: x, timeout-minutes: 10081}\n", "jobs.a.timeout-minutes", "at most 10080"),
        ("jobs:\n  a: {run: x, timeout_secs: 0}\n", "jobs.a.timeout_secs", "above 0"),
        ("jobs:\n  a: {run: x, timeout_secs: 1.5}\n", "jobs.a.timeout_secs", "whole number of seconds"),
        ("jobs:\n  a: {run: x, timeout_secs: 1, timeout-minutes: 1}\n", "jobs.a.timeout-minutes", "not both"),
        # backoff
        ("jobs:\n  a: {run: x, backoff: sometimes}\n", "jobs.a.backoff", "must be none, {fixed:"),
        ("jobs:\n  a: {run: x, backoff: {linear: {step: 1}}}\n", "jobs.a.backoff", "must be none, {fixed:"),
        ("jobs:\n  a: {run: x, backoff: {fixed: {delay_secs: 1}, exponential: {base_secs: 1, max_secs: 2}}}\n", "jobs.a.backoff", "must be none"),
        ("jobs:\n  a: {run: x, backoff: {fixed: 5}}\n", "jobs.a.backoff.fixed", "a mapping with delay_secs"),
        ("jobs:\n  a: {run: x, backoff: {fixed: {}}}\n", "jobs.a.backoff.fixed.delay_secs", "required"),
        ("jobs:\n  a: {run: x, backoff: {fixed: {delay_secs: -1}}}\n", "jobs.a.backoff.fixed.delay_secs", "an integer from 0 to 604800"),
        ("jobs:\n  a: {run: x, backoff: {fixed: {delay_secs: true}}}\n", "jobs.a.backoff.fixed.delay_secs", "an integer"),
        ("jobs:\n  a: {run: x, backoff: {fixed: {delay_secs: 1, jitter: 2}}}\n", "jobs.a.backoff.fixed.jitter", "unknown field"),
        ("jobs:\n  a: {run: x, backoff: {exponential: {base_secs: 1}}}\n", "jobs.a.backoff.exponential.max_secs", "required"),
        ("jobs:\n  a: {run: x, backoff: {exponential: {base_secs: 10, max_secs: 5}}}\n", "jobs.a.backoff.exponential.max_secs", "at least base_secs"),
        ('jobs:\n  a: {run: x, backoff: {"Exponential": {"base_secs": 1.5, "max_secs": 5}}}\n', "jobs.a.backoff.Exponential.base_secs", "an integer"),
    ],
)
def test_document_shape_problem(yaml_text, field, fragment):
    problems = problems_of(yaml_text)
    assert any(fragment in message for message in messages_for(problems, field)), problems


@pytest.mark.parametrize(
    ("jobs", "field", "fragment"),
    [
        ([{"command": "x"}], "jobs[0].id", "required"),
        ([{"id": 7, "command": "x"}], "jobs[0].id", "must be strings"),
        ([{"id": "a b", "command": "x"}], "jobs[0].id", "invalid job id 'a b'"),
        ([{"id": "a\n", "command": "x"}], "jobs[0].id", "invalid job id"),
        ([{"id": "a", "command": "x"}, {"id": "a", "command": "y"}], "jobs[1].id", "duplicate job id 'a' (also jobs[0])"),
        (["a"], "jobs[0]", "must be a mapping"),
        ([{"id": "a"}], "jobs[0].command", "required (or give steps)"),
        ([{"id": "a", "command": ""}], "jobs[0].command", "non-empty string"),
        ([{"id": "a", "command": "x", "steps": [{"run": "y"}]}], "jobs[0]", "give command or steps, not both"),
        ([{"id": "a", "command": "x", "needs": ["b"]}], "jobs[0].needs", "unknown field"),
        ([{"id": "a", "command": "x", "run": "y"}], "jobs[0].run", "unknown field"),
        ([{"id": "a", "command": "x", "depends_on": ["tset"]}, {"id": "test", "command": "y"}], "jobs[0].depends_on", "unknown job 'tset' (did you mean 'test'?)"),
        ([{"id": "a", "command": "x", "max_retries": -1}], "jobs[0].max_retries", "an integer from 0 to 100"),
        ([{"id": "a", "command": "x", "required_labels": ["ok", "a b"]}], "jobs[0].required_labels[1]", "invalid label 'a b'"),
        ([{"id": "a", "command": "x", "backoff": {"Fixed": {"delay_secs": "5"}}}], "jobs[0].backoff.Fixed.delay_secs", "an integer"),
        ([{"id": "a", "command": "x"}] * 2 + [{"id": "c", "command": "x", "priority": 1000}], "jobs[2].priority", "from -100 to 100"),
    ],
)
def test_seed_shape_problem(jobs, field, fragment):
    problems = problems_of({"name": "w", "jobs": jobs}, JSON)
    assert any(fragment in message for message in messages_for(problems, field)), problems


def test_seed_shape_trigger_must_be_text():
    problems = problems_of({"name": "w", "trigger": 5, "jobs": [{"id": "a", "command": "x"}]}, JSON)
    assert messages_for(problems, "trigger") == [
        "must be an event name, a list of them or a mapping keyed by them (got a number; quote it)"
    ]


def test_unknown_need_without_a_close_match_has_no_suggestion():
    problems = problems_of("jobs:\n  a: {run: x, needs: [zzzz]}\n")
    assert messages_for(problems, "jobs.a.needs") == ["unknown job 'zzzz'"]


def test_every_problem_is_reported_at_once():
    problems = problems_of(
        """\
        name: ci
        on: push
        jobs:
          test:
            run: pytest
            retries: many
          build:
            needs: [tset]
            labels: [a b]
            steps:
              - uses: actions/checkout@v4
          deploy:
            run: ./deploy
            run-on: prod
            timeout-minutes: 0
        """
    )
    assert [(p["field"], p["line"]) for p in problems] == [
        ("jobs.test.retries", 6),
        ("jobs.build.labels[0]", 9),
        ("jobs.build.steps[0].uses", 11),
        ("jobs.deploy.run-on", 14),
        ("jobs.deploy.timeout-minutes", 15),
        ("jobs.build.needs", 8),
    ]
    assert problems[3]["message"] == "unknown field (did you mean 'runs-on'?)"


def test_problems_carry_the_yaml_position_of_their_field():
    problems = problems_of(
        """\
        jobs:
          a:
            run: x
            env:
              GOOD: 1
              BAD: {nested: 1}
        """
    )
    assert problems == [
        {"field": "jobs.a.env.BAD", "message": "must be a string, number or boolean", "line": 6, "column": 7}
    ]


def test_a_missing_field_is_positioned_at_the_mapping_that_lacks_it():
    problems = problems_of("name: w\njobs:\n  a:\n    name: x\n  b:\n    steps:\n      - name: y\n")
    assert problems == [
        {"field": "jobs.a.run", "message": "required (or give steps)", "line": 3, "column": 3},
        {"field": "jobs.b.steps[0].run", "message": "required", "line": 7, "column": 9},
    ]


def test_json_problems_have_no_position():
    problems = problems_of({"jobs": {"a": {"run": "x", "retries": -1}}}, JSON)
    assert problems == [{"field": "jobs.a.retries", "message": "must be an integer from 0 to 100"}]


def test_str_of_the_error_summarises_every_problem():
    with pytest.raises(DefinitionError) as info:
        from_yaml("jobs:\n  a: {run: x, retries: -1, needs: b}\n")
    assert str(info.value) == (
        "2 problems: jobs.a.retries (line 2, column 15): must be an integer from 0 to 100; "
        "jobs.a.needs (line 2, column 28): unknown job 'b'"
    )


def test_str_of_a_single_problem_is_just_that_problem():
    with pytest.raises(DefinitionError) as info:
        from_json({"jobs": {"a": {"run": "x", "priority": 500}}})
    assert str(info.value) == "jobs.a.priority: must be an integer from -100 to 100"


# ---- the graph --------------------------------------------------------------------


def test_cycle_is_reported_with_its_path():
    problems = problems_of(
        """\
        jobs:
          a: {run: x, needs: b}
          b: {run: x, needs: c}
          c: {run: x, needs: a}
          d: {run: x, needs: a}
        """
    )
    assert problems == [
        {"field": "jobs.a.needs", "message": "cycle: a -> b -> c -> a", "line": 2, "column": 15}
    ]


def test_each_distinct_cycle_is_reported_once():
    problems = problems_of(
        {
            "jobs": [
                {"id": "a", "command": "x", "depends_on": ["b"]},
                {"id": "b", "command": "x", "depends_on": ["a"]},
                {"id": "c", "command": "x", "depends_on": ["d", "a"]},
                {"id": "d", "command": "x", "depends_on": ["e"]},
                {"id": "e", "command": "x", "depends_on": ["c"]},
            ]
        },
        JSON,
    )
    assert problems == [
        {"field": "jobs[0].depends_on", "message": "cycle: a -> b -> a"},
        {"field": "jobs[2].depends_on", "message": "cycle: c -> d -> e -> c"},
    ]


def test_self_need_is_not_also_reported_as_a_cycle():
    problems = problems_of("jobs:\n  a: {run: x, needs: [a]}\n")
    assert [p["message"] for p in problems] == ["a job cannot need itself"]


def test_a_long_chain_is_fine_and_the_job_limit_is_1000():
    chain = {f"j{i}": {"run": "x", "needs": f"j{i - 1}"} if i else {"run": "x"} for i in range(1000)}
    spec = from_json({"jobs": chain})
    assert len(spec.jobs) == 1000 and spec.jobs[-1].needs == ["j998"]

    chain["j1000"] = {"run": "x"}
    problems = problems_of({"jobs": chain}, JSON)
    assert problems == [{"field": "jobs", "message": "at most 1000 jobs per workflow (got 1001)"}]


def test_a_long_cycle_is_found_without_recursion():
    ring = {f"j{i}": {"run": "x", "needs": f"j{(i + 1) % 1000}"} for i in range(1000)}
    problems = problems_of({"jobs": ring}, JSON)
    assert len(problems) == 1
    assert problems[0]["message"].startswith("cycle: j0 -> j1 -> j2 -> ")
    assert problems[0]["message"].endswith(" -> j999 -> j0")


def test_a_flood_of_problems_is_capped():
    problems = problems_of({"jobs": {"a": {"run": "x", "labels": [1] * 5000}}}, JSON)
    assert len(problems) == 201
    assert problems[-1] == {"field": "document", "message": "4800 more problems not shown"}


def test_a_definition_without_schedules_or_inputs_keeps_its_version():
    """Versions hash the checked definition: the fields added for `on:`
    (schedules, inputs) and `concurrency:` (the workflow's and a job's) are
    left out while empty, so a definition stored before them is not seen as
    changed when its file is loaded again."""
    import hashlib

    from server.store import definition_version

    spec = parse_workflow(b"name: x\non: push\njobs: {a: {run: echo}}", "application/yaml")
    before = msgspec.json.encode({"name": spec.name, "trigger": spec.trigger, "jobs": spec.jobs})
    assert definition_version(spec) == hashlib.sha1(before).hexdigest()[:16]
    scheduled = parse_workflow(b"name: x\non: {schedule: [{cron: '0 3 * * *'}]}\njobs: {a: {run: echo}}",
                               "application/yaml")
    assert definition_version(scheduled) != definition_version(spec)
    for grouped in (b"name: x\non: push\nconcurrency: deploy\njobs: {a: {run: echo}}",
                    b"name: x\non: push\njobs: {a: {run: echo, concurrency: deploy}}"):
        assert definition_version(parse_workflow(grouped, "application/yaml")) != definition_version(spec)
