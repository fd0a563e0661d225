"""The workflow language's keys at submit: what each accepts, where each
expression may read what, static matrices expanded (and refused when they
cannot run), each problem with its field and, for YAML, line and column."""

from __future__ import annotations

import pytest

from server.definitions.spawn import parse_spawn
from server.deciding.flags import decide_flags
from tests.test_definition_checks import JSON, YAML, only_problem, parse, problems_of, seed


def job_of(body: str, job: str = "a"):
    return next(j for j in parse(body).jobs if j.id == job)


# ---- if ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("failure()", "failure()"),
        ("${{ failure() }}", " failure() "),
        ("\"github == 'x' || always()\"".replace("github", "inputs.x"), "inputs.x == 'x' || always()"),
        ("true", "true"),
        ("false", "false"),
        ("\"!cancelled()\"", "!cancelled()"),
    ],
)
def test_a_condition_is_stored_without_its_braces(written, stored):
    job = job_of(f"jobs:\n  b: {{run: x}}\n  a:\n    needs: b\n    if: {written}\n    run: x\n")
    assert job.if_ == stored


def test_a_condition_with_text_around_its_braces_is_refused():
    found = only_problem("jobs:\n  a:\n    if: ${{ inputs.a }} && inputs.b\n    run: x\n")
    assert found["field"] == "jobs.a.if" and (found["line"], found["column"]) == (3, 9)
    assert found["message"].startswith("write the whole condition inside one ${{ }}, or without it")


@pytest.mark.parametrize(
    ("condition", "fragment", "column"),
    [
        ("matrix.os == 'linux'", "matrix is not available in jobs.a.if (the job has no strategy.matrix)", 9),
        ("env.X == 'y'", "env is not available in jobs.a.if", 9),
        ("needs.c.result == 'success'", "job 'a' needs [b]; needs.c is not one of them", 9),
        ("steps.x.outcome", "steps is not available in jobs.a.if", 9),
        ("failure() && github.ref", "unknown context 'github'", 22),
        ("success(1)", "success() takes no arguments (got 1)", 9),
        ("a ==", "unexpected end of expression after '=='", 11),
    ],
)
def test_what_a_job_condition_may_not_read(condition, fragment, column):
    found = only_problem(f"jobs:\n  b: {{run: x}}\n  c: {{run: x}}\n  a:\n    needs: b\n    if: {condition}\n    run: x\n")
    assert found["field"] == "jobs.a.if" and fragment in found["message"], found
    assert (found["line"], found["column"]) == (6, column)


def test_a_matrix_jobs_condition_is_evaluated_before_the_matrix():
    found = only_problem("jobs:\n  a:\n    if: matrix.os == 'linux'\n    strategy: {matrix: {os: [linux]}}\n    run: x\n")
    assert "a job's if: and strategy are evaluated before its matrix expands" in found["message"]


def test_a_condition_must_be_an_expression():
    found = only_problem("jobs:\n  a: {run: x, if: 3}\n")
    assert found["field"] == "jobs.a.if" and "got a number" in found["message"]


def test_status_functions_belong_in_if_only():
    problems = problems_of("jobs:\n  a:\n    name: ${{ always() }}\n    timeout-minutes: ${{ failure() && 5 }}\n"
                           "    run: x\n")
    assert [p["message"] for p in problems] == ["always() is a status function: it belongs in if: only",
                                               "failure() is a status function: it belongs in if: only"]


# ---- strategy and the matrix --------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "field", "fragment"),
    [
        ("{matrix: {os: []}}", "jobs.a.strategy.matrix.os", "matrix key 'os' has no values"),
        ("{matrix: {os: linux}}", "jobs.a.strategy.matrix.os", "must be a list of values"),
        ("{matrix: {}}", "jobs.a.strategy.matrix", "needs at least one key with values, or include"),
        ("{matrix: {os: [a], exclude: [{arch: x}]}}", "jobs.a.strategy.matrix.exclude[0].arch",
         "exclude key 'arch' is not one of the matrix's keys (os)"),
        ("{matrix: {os: [a], include: {os: b}}}", "jobs.a.strategy.matrix.include", "include must be a list"),
        ("{matrix: {os: [a], exclude: [{os: a}]}}", "jobs.a.strategy.matrix", "no combinations left after exclude"),
        ("{matrix: {a: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16], b: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}}",
         "jobs.a.strategy.matrix", "the matrix makes 272 combinations; at most 256"),
        ("{matrix: {'1x': [a]}}", "jobs.a.strategy.matrix.1x", "invalid matrix key '1x'"),
        ("{matrix: linux}", "jobs.a.strategy.matrix", "must be a mapping"),
        ("{max-parallel: 0, matrix: {os: [a]}}", "jobs.a.strategy.max-parallel", "at least 1"),
        ("{fail-fast: maybe, matrix: {os: [a]}}", "jobs.a.strategy.fail-fast", "must be true, false"),
        ("{matrix: {os: [a]}, parallel: 2}", "jobs.a.strategy.parallel", "unknown field"),
        ("{fail-fast: true}", "jobs.a.strategy.matrix", "required"),
        ("{matrix: '${{ matrix.x }}'}", "jobs.a.strategy.matrix", "matrix is not available in jobs.a.strategy"),
    ],
)
def test_a_matrix_that_cannot_run_is_refused_at_submit(strategy, field, fragment):
    found = only_problem(f"jobs:\n  a:\n    strategy: {strategy}\n    run: x\n")
    assert found["field"] == field and fragment in found["message"], found


def test_a_product_beyond_the_work_bound_is_refused_before_it_is_built():
    vectors = {f"k{i}": list(range(10)) for i in range(6)}  # a million combinations before exclude
    found = only_problem({"jobs": {"a": {"run": "x", "strategy": {"matrix": {**vectors, "exclude": []}}}}}, JSON)
    assert "more than 65536 combinations before exclude" in found["message"]


def test_matrix_keys_are_checked_where_they_are_known():
    base = "jobs:\n  p: {run: x}\n  a:\n    needs: p\n    runs-on: ${{ matrix.%s }}\n    strategy:\n      matrix: %s\n    run: x\n"
    found = only_problem(base % ("arch", "{os: [linux], include: [{os: linux, cpu: arm}]}"))
    assert found["message"] == "the matrix has no key 'arch': its keys are cpu, os"
    parse(base % ("cpu", "{os: [linux], include: [{os: linux, cpu: arm}]}"))
    # an expression may give any key
    parse(base % ("anything", "${{ fromJSON(needs.p.outputs.m) }}"))
    parse(base % ("anything", "{os: '${{ fromJSON(needs.p.outputs.os) }}', include: '${{ fromJSON(needs.p.outputs.i) }}'}"))


def test_a_strategy_reads_needs_inputs_and_run():
    job = job_of("jobs:\n  p: {run: x}\n  a:\n    needs: p\n    strategy:\n"
                 "      fail-fast: ${{ inputs.ff == 'yes' }}\n      max-parallel: ${{ inputs.n }}\n"
                 "      matrix:\n        os: ${{ fromJSON(needs.p.outputs.os) }}\n        n: [1, '${{ run.number }}']\n"
                 "    run: x\n")
    assert job.strategy.fail_fast == "${{ inputs.ff == 'yes' }}" and job.strategy.max_parallel == "${{ inputs.n }}"


# ---- the other job keys ----------------------------------------------------------------


def test_expressions_in_job_fields_are_kept_for_the_decision():
    job = job_of("jobs:\n  a:\n    name: Build ${{ matrix.os }}\n    runs-on: [self-hosted, '${{ matrix.os }}']\n"
                 "    timeout-minutes: ${{ matrix.minutes }}\n    continue-on-error: ${{ matrix.experimental }}\n"
                 "    strategy: {matrix: {os: [linux], minutes: [5], experimental: [false]}}\n    run: x\n")
    assert job.labels == [] and job.labels_expr == ["self-hosted", "${{ matrix.os }}"]
    assert job.timeout_expr == "${{ matrix.minutes }}" and job.timeout_secs is None
    assert job.continue_on_error == "${{ matrix.experimental }}"
    assert decide_flags(job) == "dx"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("continue-on-error: yes", "must be true, false or one ${{ }} expression"),
        ("continue-on-error: 'x ${{ inputs.a }}'", "must be true or false, or one ${{ }} expression"),
        ("timeout-minutes: 'about ${{ inputs.a }}'", "must be a number of minutes, or one ${{ }} expression"),
        ("runs-on: [linux, 'bad label']", "invalid label 'bad label'"),
        ("outputs: {1x: v}", "invalid output name"),
        ("outputs: {v: 3}", "must be a string"),
        ("outputs: {v: '${{ steps.nope.outputs.v }}'}", "steps.nope: there is no step with an id"),
        ("defaults: {run: {shell: cmd}}", "cmd is a Windows shell"),
        ("defaults: {run: {shell: zsh}}", "must be bash, sh, python, pwsh or a command with {0}"),
        ("defaults: {run: {cwd: src}}", "unknown field: defaults.run takes shell and working-directory"),
        ("defaults: {run: {working-directory: '${{ inputs.d }}'}}", "defaults take no expressions"),
        ("defaults: {build: {}}", "unknown field: defaults takes run"),
    ],
)
def test_job_keys_of_the_language_are_checked(value, fragment):
    found = only_problem(f"jobs:\n  a:\n    {value}\n    run: x\n")
    assert fragment in found["message"], found


@pytest.mark.parametrize("field", ["if", "continue-on-error", "timeout-minutes", "runs-on"])
def test_an_expression_field_is_bounded_as_the_schema_says(field):
    from server.limits import MAX_DOCUMENT_EXPRESSION_CHARS

    long = "${{ inputs.x }}" + " " * MAX_DOCUMENT_EXPRESSION_CHARS
    job = {"run": "x", field: [long] if field == "runs-on" else long}
    found = only_problem({"jobs": {"a": job}}, JSON)
    assert found["field"].startswith(f"jobs.a.{field}"), found
    assert f"longer than {MAX_DOCUMENT_EXPRESSION_CHARS} characters" in found["message"]


def test_a_whole_number_float_is_a_max_parallel_as_the_schema_says():
    spec = parse({"jobs": {"a": {"run": "x", "strategy": {"matrix": {"n": [1, 2]}, "max-parallel": 1.0}}}}, JSON)
    assert spec.jobs[0].strategy.max_parallel == 1


def test_the_published_document_schema_declares_the_language_keys():
    import json

    from server.app import create_app

    schemas = json.loads(create_app().state.openapi)["components"]["schemas"]
    assert {"if", "strategy", "continue-on-error", "outputs", "defaults"} <= set(schemas["JobDocument"]["properties"])
    assert {"id", "if", "env", "shell", "working-directory", "timeout-minutes", "continue-on-error"} <= set(
        schemas["StepDocument"]["properties"])
    assert {"run-name", "env", "defaults"} <= set(schemas["WorkflowDocument"]["properties"])
    for name in ("StepDocument", "JobDocument", "WorkflowDocument", "StrategyDocument", "DefaultsDocument"):
        assert schemas[name]["additionalProperties"] is False, name
    # the seed shape echoes a job's outputs back as state: not declared there
    assert "outputs" not in schemas["SeedJobDocument"]["properties"]


def test_job_outputs_read_the_jobs_steps():
    job = job_of("jobs:\n  a:\n    outputs:\n      version: ${{ steps.v.outputs.version }}\n"
                 "      plain: fixed\n    steps:\n      - id: v\n        run: ./version\n")
    assert job.outputs == {"version": "${{ steps.v.outputs.version }}", "plain": "fixed"}


def test_defaults_merge_workflow_then_job():
    spec = parse("defaults: {run: {shell: sh, working-directory: app}}\n"
                 "jobs:\n  a: {run: x}\n  b: {run: x, defaults: {run: {shell: 'perl {0}'}}}\n")
    assert [(j.defaults.shell, j.defaults.working_directory) for j in spec.jobs] == [
        ("sh", "app"), ("perl {0}", "app")]


# ---- steps ----------------------------------------------------------------------------------


def test_step_keys_are_kept_for_the_worker():
    job = job_of("jobs:\n  a:\n    steps:\n      - id: build\n        run: make\n"
                 "      - name: Test ${{ matrix.py }} after ${{ steps.build.outcome }}\n"
                 "        if: ${{ always() && steps.build.conclusion == 'failure' }}\n"
                 "        env:\n          LOG: ${{ env.BASE }}/${{ steps.build.outputs.dir }}\n"
                 "        shell: python\n        working-directory: ${{ inputs.dir }}\n"
                 "        timeout-minutes: 5\n        continue-on-error: ${{ matrix.py == '3.13' }}\n"
                 "        run: print('hi')\n"
                 "    strategy: {matrix: {py: ['3.12', '3.13']}}\n")
    step = job.steps[1]
    assert step.if_ == " always() && steps.build.conclusion == 'failure' "
    assert step.env == {"LOG": "${{ env.BASE }}/${{ steps.build.outputs.dir }}"}
    assert (step.shell, step.working_directory, step.timeout_minutes) == ("python", "${{ inputs.dir }}", 5)
    assert step.continue_on_error == "${{ matrix.py == '3.13' }}"


@pytest.mark.parametrize(
    ("steps", "field", "fragment"),
    [
        ("[{id: b, run: x}, {id: b, run: y}]", "jobs.a.steps[1].id", "duplicate step id 'b' (also steps[0])"),
        ("[{id: '1b', run: x}]", "jobs.a.steps[0].id", "invalid step id"),
        ("[{run: x, if: '${{ steps.later.outcome }}'}, {id: later, run: y}]", "jobs.a.steps[0].if",
         "steps.later: there is no step with an id among the earlier steps' ids"),
        ("[{id: b, run: x}, {run: y, env: {A: '${{ steps.c.outputs.v }}'}}]", "jobs.a.steps[1].env.A",
         "steps.c is not one of the earlier steps' ids (b)"),
        ("[{id: b, run: x}, {run: y, if: steps.b.result}]", "jobs.a.steps[1].if",
         "steps.b has no 'result': it has outputs, outcome, conclusion"),
        ("[{run: x, shell: powershell}]", "jobs.a.steps[0].shell", "Windows shell"),
        ("[{run: x, timeout-minutes: 0}]", "jobs.a.steps[0].timeout-minutes", "above 0"),
        ("[{run: x, continue-on-error: 'maybe'}]", "jobs.a.steps[0].continue-on-error", "must be true, false"),
        ("[{run: x, working-directory: ''}]", "jobs.a.steps[0].working-directory", "must be a directory"),
        ("[{run: x, name: '${{ github.job }}'}]", "jobs.a.steps[0].name", "unknown context 'github'"),
    ],
)
def test_step_keys_are_checked(steps, field, fragment):
    found = only_problem(f"jobs:\n  a:\n    steps: {steps}\n")
    assert found["field"] == field and fragment in found["message"], found


# ---- the workflow's keys ------------------------------------------------------------------------


def test_a_static_workflow_env_is_merged_into_every_job_under_its_own():
    spec = parse("env: {A: '1', B: two}\njobs:\n  a: {run: x}\n  b: {run: x, env: {B: mine}}\n")
    assert [j.env for j in spec.jobs] == [{"A": "1", "B": "two"}, {"A": "1", "B": "mine"}]
    assert spec.env == {} and [decide_flags(j) for j in spec.jobs] == ["", ""]


def test_a_workflow_env_with_expressions_is_rendered_per_job():
    spec = parse("env: {V: 'v${{ inputs.version }}'}\njobs:\n  a: {run: x}\n")
    assert spec.env == {"V": "v${{ inputs.version }}"} and spec.jobs[0].env == {}
    assert decide_flags(spec.jobs[0], dynamic_env=True) == "d"


@pytest.mark.parametrize(
    ("document", "field", "fragment"),
    [
        ("env: {V: '${{ needs.a.outputs.v }}'}\n", "env.V", "needs is not available in env"),
        ("env: {V: '${{ matrix.os }}'}\n", "env.V", "matrix is not available in env"),
        ("run-name: '${{ needs.a.result }}'\n", "run-name", "needs is not available in run-name"),
        ("run-name: '${{ github.actor }}'\n", "run-name", "unknown context 'github'"),
        ("run-name: ''\n", "run-name", "non-empty string"),
        ("env: [A]\n", "env", "must be a mapping"),
    ],
)
def test_the_workflows_keys_read_inputs_and_run(document, field, fragment):
    found = only_problem(document + "jobs:\n  a: {run: x}\n")
    assert found["field"] == field and fragment in found["message"], found


def test_run_name_is_kept():
    assert parse("run-name: Deploy ${{ inputs.env }}\njobs:\n  a: {run: x}\n").run_name == "Deploy ${{ inputs.env }}"


# ---- which jobs are decided ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "flags"),
    [
        ("{run: x}", ""),
        ("{run: x, needs: b, env: {V: '${{ needs.b.outputs.v }}'}}", ""),
        ("{run: x, needs: b, env: {V: '${{ needs.b.outputs.v || 1 }}'}}", "d"),
        ("{run: x, env: {V: '${{ inputs.v }}'}}", "d"),
        ("{run: x, name: '${{ inputs.v }}'}", "d"),
        ("{run: x, if: \"inputs.v == 'x'\"}", "d"),
        ("{run: x, if: failure()}", "da"),
        ("{run: x, continue-on-error: true}", "c"),
        ("{run: x, strategy: {matrix: {a: [1]}}, if: always()}", "dax"),
    ],
)
def test_which_jobs_are_decided_and_which_go_straight_to_their_queue(job, flags):
    assert decide_flags(job_of(f"jobs:\n  b: {{run: x}}\n  a: {job}\n")) == flags


# ---- the seed shape, gates and spawns -------------------------------------------------------------------


def test_the_seed_shape_takes_the_language_too():
    spec = parse(seed({"id": "b", "command": "x"},
                      {"id": "a", "command": "x", "depends_on": ["b"], "if": "failure()",
                       "strategy": {"matrix": {"n": [1, 2]}}, "continue-on-error": True}), JSON)
    assert (spec.jobs[1].if_, spec.jobs[1].continue_on_error) == ("failure()", True)


def test_a_gate_may_have_a_condition():
    spec = parse("jobs:\n  b: {run: x}\n  approve:\n    needs: b\n    if: \"inputs.env == 'prod'\"\n"
                 "    wait: {event: go}\n")
    assert spec.jobs[1].if_ == "inputs.env == 'prod'"
    found = only_problem("jobs:\n  approve:\n    wait: {event: go}\n    strategy: {matrix: {n: [1]}}\n")
    assert "a wait: job runs nothing on a worker" in found["message"]


def test_spawned_jobs_take_the_language():
    body = b"jobs:\n  t:\n    needs: [build]\n    if: failure()\n    strategy: {matrix: {n: [1, 2]}}\n    run: x\n"
    spawned = parse_spawn(body, YAML, existing={"build"})
    assert spawned.jobs[0].if_ == "failure()" and decide_flags(spawned.jobs[0]) == "dax"
