"""A job's verdict (server/deciding), without Redis: conditions with
GitHub's status rules, rendered fields and what makes them unusable,
matrix combination ids and names, and the bound on one decision's work."""

from __future__ import annotations

import pytest

from server.deciding.matrix import combination_ids, display_name, expand
from server.deciding.verdict import Expand, Fail, Run, Skip, decide
from server.definitions import parse_workflow
from server.expressions import Status

CONTEXTS = {"needs": {"a": {"result": "success", "outputs": {"v": "1.2", "big": "x" * 70_000,
                                                             "labels": '["l1", "l2"]', "m": "{}"}}},
            "inputs": {"env": "prod"}, "run": {"id": "r", "number": 3, "workflow": "wf", "triggered_by": "api",
                                                "tags": {}, "attempt": 1}}


def spec(job: str, workflow_env: str = ""):
    document = f"{workflow_env}jobs:\n  a: {{run: x}}\n  b:\n    needs: a\n" + "".join(
        f"    {line}\n" for line in job.strip().splitlines())
    parsed = parse_workflow(document.encode(), "application/yaml")
    return parsed.jobs[1], parsed.env


SUCCESS = Status()


def verdict(job: str, status: Status = SUCCESS, workflow_env: str = ""):
    job_spec, env = spec(job, workflow_env)
    return decide(job_spec, CONTEXTS, status, workflow_env=env, taken=frozenset({"a", "b"}),
                  upstream="something upstream failed")


def test_a_condition_without_a_status_function_needs_success():
    assert verdict("if: inputs.env == 'prod'\nrun: x") == Run(verdict("run: x").decided)
    assert verdict("if: inputs.env == 'prod'\nrun: x", Status(success=False, failure=True)) == Skip(
        "if: \"inputs.env == 'prod'\" is false (something upstream did not succeed)")
    assert verdict("run: x", Status(success=False, cancelled=True)) == Skip("something upstream failed")


@pytest.mark.parametrize(
    ("condition", "status", "runs"),
    [
        ("failure()", Status(success=False, failure=True), True),
        ("failure()", Status(), False),
        ("always()", Status(success=False, cancelled=True), True),
        ("cancelled()", Status(success=False, cancelled=True), True),
        ("cancelled()", Status(success=False, failure=True), False),
        ("${{ !cancelled() }}", Status(success=False, failure=True), True),
        ("${{ !cancelled() }}", Status(success=False, cancelled=True), False),
        ("success() || needs.a.result == 'success'", Status(success=False, failure=True), True),
    ],
)
def test_status_functions(condition, status, runs):
    got = verdict(f"if: \"{condition}\"\nrun: x", status)
    assert isinstance(got, Run) == runs, got
    if not runs:
        assert isinstance(got, Skip) and got.why.startswith("if: ")


def test_fields_are_rendered_for_the_job():
    got = verdict("name: Deploy ${{ inputs.env }}\nruns-on: ${{ fromJSON(needs.a.outputs.labels) }}\n"
                  "timeout-minutes: ${{ run.number }}\ncontinue-on-error: ${{ inputs.env == 'prod' }}\n"
                  "env:\n  V: v${{ needs.a.outputs.v }}\n  W: from job\nrun: x",
                  workflow_env="env:\n  W: from workflow\n  N: '#${{ run.number }}'\n")
    assert isinstance(got, Run)
    assert got.decided.name == "Deploy prod" and got.decided.labels == ["l1", "l2"]
    assert got.decided.timeout_secs == 180 and got.decided.continue_on_error is True
    assert got.decided.env == {"W": "from job", "N": "#3", "V": "v1.2"}


@pytest.mark.parametrize(
    ("job", "reason"),
    [
        ("runs-on: ${{ inputs.env }} x\nrun: x", "runs-on: '${{ inputs.env }} x' gave 'prod x', which is not a label"),
        ("runs-on: ${{ needs.a.outputs }}\nrun: x", "gave object where a label belongs"),
        ("env:\n  V: ${{ needs.a.outputs.big }}\nrun: x", "env V: the rendered value is 70000 characters"),
        ("timeout-minutes: ${{ inputs.env }}\nrun: x", "timeout-minutes must be a number of minutes above 0"),
        ("continue-on-error: ${{ inputs.env }}\nrun: x", "continue-on-error must be true or false (got 'prod')"),
        ("if: fromJSON(needs.a.outputs.v) == 1\nrun: x", None),
        ("if: fromJSON('x')\nrun: x", "cannot evaluate the job's expressions: fromJSON"),
        ("strategy:\n  max-parallel: ${{ inputs.env }}\n  matrix: {n: [1]}\nrun: x",
         "max-parallel must be a whole number of at least 1"),
        ("strategy:\n  matrix: ${{ fromJSON(needs.a.outputs.m) }}\nrun: x", "a matrix needs at least one key"),
    ],
)
def test_an_unusable_value_fails_the_job_with_the_reason(job, reason):
    got = verdict(job)
    if reason is None:
        assert isinstance(got, (Run, Skip)), got
    else:
        assert isinstance(got, Fail) and reason in got.error, got


def test_a_decision_is_bounded_however_many_combinations():
    # each combination makes and searches some 400,000 characters, well within
    # one evaluation's bound; 200 of them share one bound, and pass it
    got = verdict("strategy:\n  matrix:\n    n: " + str(list(range(200))) + "\n"
                  "env:\n  V: ${{ contains(format('{0}{0}{0}', toJSON(needs.a.outputs)), 'zzz') }}\nrun: x")
    assert isinstance(got, Fail), got
    assert got.error.startswith("cannot evaluate the job's expressions: expression does too much work"), got.error
    one = verdict("env:\n  V: ${{ contains(format('{0}{0}{0}', toJSON(needs.a.outputs)), 'zzz') }}\nrun: x")
    assert isinstance(one, Run) and one.decided.env == {"V": "false"}


def test_a_matrix_job_expands_with_names_ids_and_strategy():
    got = verdict("strategy:\n  max-parallel: 2\n  matrix:\n    os: [linux, mac]\n    node: [{v: 14}]\n"
                  "runs-on: ${{ matrix.os }}\nrun: x")
    assert isinstance(got, Expand) and (got.fail_fast, got.max_parallel) == (True, 2)
    (first_id, first), (second_id, second) = got.combinations
    assert (first_id, first.name, first.labels) == ("b-linux-v-14", 'b (linux, {"v":14})', ["linux"])
    assert first.strategy == {"fail-fast": True, "job-index": 0, "job-total": 2, "max-parallel": 2}
    assert (second_id, second.of, second.matrix) == ("b-mac-v-14", "b", {"os": "mac", "node": {"v": 14}})


def test_a_name_that_reads_the_matrix_is_the_combinations_name():
    got = verdict("name: Test on ${{ matrix.os }}\nstrategy:\n  matrix:\n    os: [linux]\nrun: x")
    assert got.combinations[0][1].name == "Test on linux"


def test_combination_ids_are_stable_and_unique():
    combos = expand({"a": ["x y", "x-y"], "b": ["z"]})
    # both values make job-x-y-z: the second takes the job id and a hash of its values
    assert combination_ids("job", combos, ()) == ["job-x-y-z", "job-ac16977c"]
    # a clash with a job of the run, and a long id, take the hash form
    assert combination_ids("job", [{"a": "b"}], {"job-b"}) == ["job-f1966740"]
    long = combination_ids("j" * 120, [{"a": "b" * 20}], ())[0]
    assert len(long) == 124 and long.startswith("j" * 115 + "-")
    assert combination_ids("job", [{"a": 1}, {"a": 1}], ()) == ["job-1", "job-9f89c740"]


def test_display_names_cut_long_values():
    name = display_name("build", {"x": "v" * 100})
    assert name.startswith("build (vvv") and name.endswith("…)") and len(name) < 80
