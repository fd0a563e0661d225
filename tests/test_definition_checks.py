"""What a team porting GitHub Actions workflows gets wrong, refused at submit
rather than discovered when a job runs: `${{ }}` expressions, the GitHub keys
rota does not support, and YAML scalars of the wrong type. Each on both
document shapes where it applies (the YAML mapping shape and the seed's list
shape with `command`, `env`, `depends_on`)."""

from __future__ import annotations

import json
import textwrap

import pytest

import worker.daemon.outputs
from bench import definitions_bench
from server.definitions import DefinitionError, parse_workflow
from server.definitions.spawn import parse_spawn
from worker.daemon.outputs import resolve_env

YAML = "application/yaml"
JSON = "application/json"

SCRIPT_FIX = "expressions are never expanded into a script; put it in env: and use $VAR"


def parse(body: str | object, content_type: str = YAML):
    raw = textwrap.dedent(body) if isinstance(body, str) else json.dumps(body)
    return parse_workflow(raw.encode(), content_type)


def problems_of(body: str | object, content_type: str = YAML) -> list[dict]:
    with pytest.raises(DefinitionError) as info:
        parse(body, content_type)
    return info.value.problems


def only_problem(body: str | object, content_type: str = YAML) -> dict:
    problems = problems_of(body, content_type)
    assert len(problems) == 1, problems
    return problems[0]


def seed(*jobs: dict, **top) -> dict:
    return {"name": "w", **top, "jobs": list(jobs)}


def build_and_deploy(env_value: str) -> str:
    """test -> build -> deploy, deploy's env VERSION set to `env_value` (a YAML scalar)."""
    return f"""\
        jobs:
          test:
            run: make test
          build:
            needs: test
            run: make
          deploy:
            needs: [build]
            env:
              VERSION: {env_value}
            run: ./deploy "$VERSION"
        """


# ---- expressions: what is accepted ------------------------------------------------


def test_the_grammar_is_the_workers():
    from server.definitions import expressions

    # one definition of what the worker resolves, not a second copy that can drift
    assert expressions.EXPRESSION is worker.daemon.outputs.EXPRESSION
    assert expressions.NEEDS_OUTPUT is worker.daemon.outputs.NEEDS_OUTPUT


def test_outputs_of_direct_needs_are_accepted_and_resolve_on_the_worker():
    spec = parse(
        """\
        jobs:
          build: {run: make}
          a.b: {run: make}
          deploy:
            needs: [build, a.b]
            env:
              ONE: ${{ needs.build.outputs.version }}
              TIGHT: ${{needs.build.outputs.version}}
              MIXED: "v${{ needs.build.outputs.version }}-${{ needs.a.b.outputs.tag-name }}"
              MULTI: "${{ needs.build.outputs.version }}\\n${{\\n needs.build.outputs.version \\n}}"
              PLAIN: no expression, just $HOME and ${HOME} and }} and {{
              NUMBER: 3
            run: ./deploy
        """
    )
    env = spec.jobs[2].env
    resolved = resolve_env(env, {"build": {"version": "1.2"}, "a.b": {"tag-name": "x"}})
    assert resolved["MIXED"] == "v1.2-x" and resolved["MULTI"] == "1.2\n1.2"


def test_seed_shape_outputs_of_depends_on_are_accepted():
    spec = parse(
        seed(
            {"id": "build", "command": "make"},
            {"id": "deploy", "command": "./deploy", "depends_on": ["build"],
             "env": {"V": "${{ needs.build.outputs.version }}"}},
        ),
        JSON,
    )
    assert spec.jobs[1].env == {"V": "${{ needs.build.outputs.version }}"}


# ---- expressions: needs ------------------------------------------------------------


def test_a_misspelt_need_is_refused_naming_the_direct_needs():
    found = only_problem(build_and_deploy("${{ needs.biuld.outputs.version }}"))
    assert found == {
        "field": "jobs.deploy.env.VERSION",
        "message": "job 'deploy' needs [build]; needs.biuld is not one of them (did you mean 'build'?)",
        "line": 10,
        "column": 16,
    }


def test_an_indirect_ancestor_is_refused():
    # test's outputs are not handed to deploy: only its direct needs' are
    found = only_problem(build_and_deploy("${{ needs.test.outputs.coverage }}"))
    assert found["field"] == "jobs.deploy.env.VERSION"
    assert found["message"] == (
        "job 'deploy' needs [build]; needs.test is not one of them (add test to needs: to read its outputs)"
    )


def test_a_job_without_needs_reads_no_outputs():
    found = only_problem("jobs:\n  a: {run: x}\n  b: {run: x, env: {V: '${{ needs.a.outputs.k }}'}}\n")
    assert found["field"] == "jobs.b.env.V"
    assert found["message"] == "job 'b' needs no job; needs.a is not one of them (add a to needs: to read its outputs)"


def test_a_job_cannot_read_its_own_outputs():
    found = only_problem(build_and_deploy("${{ needs.deploy.outputs.k }}"))
    assert found["message"] == "job 'deploy' needs [build]; needs.deploy is not one of them" \
                               " (a job cannot read its own outputs)"


def test_an_unknown_job_without_a_close_match():
    found = only_problem(build_and_deploy("${{ needs.zzzz.outputs.k }}"))
    assert found["message"] == "job 'deploy' needs [build]; needs.zzzz is not one of them"


def test_seed_shape_need_outside_depends_on_is_refused():
    found = only_problem(
        seed(
            {"id": "test", "command": "make test"},
            {"id": "build", "command": "make", "depends_on": ["test"]},
            {"id": "deploy", "command": "./deploy", "depends_on": ["build"],
             "env": {"V": "${{ needs.test.outputs.coverage }}"}},
        ),
        JSON,
    )
    assert found == {
        "field": "jobs[2].env.V",
        "message": "job 'deploy' needs [build]; needs.test is not one of them"
                   " (add test to depends_on to read its outputs)",
    }


def test_invalid_needs_are_reported_once_not_again_for_each_expression():
    problems = problems_of("jobs:\n  a: {run: x}\n  b: {run: x, needs: {a: 1}, env: {V: '${{ needs.a.outputs.k }}'}}\n")
    assert [p["field"] for p in problems] == ["jobs.b.needs"]


def test_spawned_jobs_may_read_outputs_of_jobs_already_in_the_run():
    body = b"jobs:\n  test: {run: x, needs: [build], env: {V: '${{ needs.build.outputs.v }}'}}\n"
    assert parse_spawn(body, YAML, existing={"build"}).jobs[0].env == {"V": "${{ needs.build.outputs.v }}"}
    body = b"jobs:\n  test: {run: x, needs: [build], env: {V: '${{ needs.setup.outputs.v }}'}}\n"
    with pytest.raises(DefinitionError) as info:
        parse_spawn(body, YAML, existing={"build", "setup"})
    assert info.value.problems[0]["message"] == (
        "job 'test' needs [build]; needs.setup is not one of them (add setup to needs: to read its outputs)"
    )


# ---- expressions: contexts and form -----------------------------------------------


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("${{ github.sha }}", "unknown context 'github': rota has no github context: the run context has"),
        ("${{ secrets.TOKEN }}", "unknown context 'secrets': rota keeps no secrets: give the worker the secret"),
        ("${{ vars.X }}", "unknown context 'vars': rota has no configuration variables: use a run input"),
        ("${{ runner.os }}", "unknown context 'runner': a job runs in its worker's environment"),
        ("${{ nedds.build.outputs.v }}", "unknown context 'nedds' (did you mean 'needs'?): the contexts are"),
        ("${{ env.HOME }}", "env is not available in jobs.deploy.env (the env context is for steps and a job's"
                            " outputs): it may use needs, inputs, run, strategy"),
        ("${{ matrix.os }}", "matrix is not available in jobs.deploy.env (the job has no strategy.matrix)"),
        ("${{ steps.x.outputs.y }}", "steps is not available in jobs.deploy.env"),
        ("${{ run.sha }}", "run has no 'sha': it has id, number, workflow, triggered_by, tags, attempt"),
        ("${{ strategy.index }}", "strategy has no 'index': it has fail-fast, job-index, job-total, max-parallel"),
        ("${{ needs.build.output.v }}", "needs.build has no 'output': it has result and outputs"),
        ("${{ success() }}", "success() is a status function: it belongs in if: only"),
    ],
)
def test_contexts_a_key_may_not_read_are_refused_with_what_it_may(expression, fragment):
    found = only_problem(build_and_deploy(f'"{expression}"'))
    assert found["field"] == "jobs.deploy.env.VERSION"
    assert fragment in found["message"], found
    assert (found["line"], found["column"]) == (10, 21)


@pytest.mark.parametrize(
    "expression",
    [
        "${{ format('{0}-{1}', needs.build.outputs.v, inputs.tag) }}",
        "${{ needs.build.outputs.version || 'dev' }}",
        "${{ needs.build.outputs }}",
        "${{ Needs.Build.Outputs.version }}",
        "${{ toJSON(needs) }}",
        "${{ needs.build.result == 'success' && 'ok' || 'not' }}",
        "${{ inputs.version }} on ${{ run.number }}, attempt ${{ run.attempt }} of ${{ run.tags.release }}",
        "${{ strategy.job-index }}",
        "${{ '${{' }}",
    ],
)
def test_expressions_a_job_env_may_hold(expression):
    spec = parse(build_and_deploy(json.dumps(expression)))
    assert spec.jobs[2].env == {"VERSION": expression}


@pytest.mark.parametrize(
    ("value", "fragment", "column"),
    [
        ("${{ needs.build.outputs.a b }}", "unexpected symbol 'b' in '${{ needs.build.outputs.a b }}'", 43),
        ("${{ }}", "empty expression '${{ }}'", 17),
        ("${{ needs.build.outputs.version", "unclosed '${{': no '}}' after it", 17),
        ("ok ${{ needs.build.outputs.version }} then ${{ oops", "unclosed '${{'", 60),
        ("${{ needs.build.outputs.version }", "unclosed '${{'", 17),
        ("${{ 1 + 2 }}", "unexpected symbol '+'", 23),
        ("${{ hashFiles('x') }}", "unknown function hashFiles()", 21),
        ("${{ a == \"b\" }}", "unexpected symbol", 27),
    ],
)
def test_syntax_errors_are_refused_where_they_are(value, fragment, column):
    found = only_problem(build_and_deploy(json.dumps(value)))
    assert found["field"] == "jobs.deploy.env.VERSION"
    assert fragment in found["message"], found
    assert (found["line"], found["column"]) == (10, column), found


def test_positions_inside_block_and_quoted_scalars():
    problems = problems_of(
        """\
        jobs:
          build: {run: make}
          deploy:
            needs: build
            env:
              BLOCK: |
                first line
                then ${{ github.sha }}
              QUOTED: 'it''s ${{ vars.X }}'
              FOLDED: >
                one
                two ${{ secrets.Y }}
            run: ./deploy
        """
    )
    assert [(p["field"], p["line"], p["column"]) for p in problems] == [
        ("jobs.deploy.env.BLOCK", 8, 18),
        ("jobs.deploy.env.QUOTED", 9, 26),
        ("jobs.deploy.env.FOLDED", 12, 17),
    ]


def test_seed_shape_unknown_context_and_malformed_are_refused():
    problems = problems_of(
        seed({"id": "a", "command": "x", "env": {"SHA": "${{ github.sha }}", "BAD": "${{ needs.a.outputs"}}),
        JSON,
    )
    assert [p["field"] for p in problems] == ["jobs[0].env.SHA", "jobs[0].env.BAD"]
    assert "unknown context 'github'" in problems[0]["message"]
    assert "unclosed '${{'" in problems[1]["message"]
    assert "line" not in problems[0]  # JSON: a field path only


def test_every_expression_problem_of_a_document_is_reported_at_once():
    problems = problems_of(
        """\
        jobs:
          build: {run: make}
          deploy:
            needs: build
            env:
              A: ${{ needs.biuld.outputs.v }}
              B: ${{ github.sha }} and ${{ steps.x.outputs }}
            run: echo ${{ needs.build.outputs.v }}
        """
    )
    assert [(p["field"], p["line"], p["column"]) for p in problems] == [
        ("jobs.deploy.env.A", 6, 10),
        ("jobs.deploy.env.B", 7, 14),
        ("jobs.deploy.env.B", 7, 36),
        ("jobs.deploy.run", 8, 15),
    ]


def test_a_value_full_of_unclosed_openings_is_one_problem():
    # (how long it takes is a `make bench` figure: a test may not depend on speed)
    found = only_problem(definitions_bench.unclosed_openings(), JSON)
    assert "unclosed" in found["message"]


def test_the_expressions_of_a_document_are_bounded_before_they_are_parsed():
    from server.limits import EXPRESSION_CHARS_FLOOR, MAX_DOCUMENT_EXPRESSION_CHARS

    # many small expressions: each counts at least the floor
    count = MAX_DOCUMENT_EXPRESSION_CHARS // EXPRESSION_CHARS_FLOOR + 1
    env = {f"V{i}": "${{ inputs.x }}" for i in range(250)}
    jobs = {f"j{n}": {"run": "x", "env": env} for n in range(count // 250 + 1)}
    problems = problems_of({"jobs": jobs}, JSON)
    assert len(problems) == 1, problems[:3]
    assert problems[0]["message"].startswith(f"the document's expressions are more than {MAX_DOCUMENT_EXPRESSION_CHARS}"
                                             " characters")


def test_a_flood_of_bad_references_is_counted_not_spelt_out():
    # 40 fan-in jobs, each of 900 needs, each env value 40 distinct unknown references
    # (as many as the document's bound on expressions lets through)
    problems = problems_of(definitions_bench.a_flood_of_bad_references(), JSON)
    assert problems[0]["message"] == (
        "job 'fan0' needs [pad0, pad1, pad2, pad3, pad4, pad5, pad6, pad7, pad8, pad9, and 890 more];"
        " needs.zz0x0y0 is not one of them"
    )
    assert problems[-1] == {"field": "document", "message": f"{40 * 4 * 40 - 200} more problems not shown"}


@pytest.mark.parametrize("needs", [900, 200])
def test_refusing_a_flood_of_bad_references_compares_a_bounded_number_of_names(monkeypatch, needs):
    # Each "did you mean" compares a name with every candidate (difflib); a
    # document of 6,400 unknown references among 900 needs made 5.8 million
    # comparisons (seconds of the server's CPU for one refused request, which
    # a job's run token can send as a spawn). Only the problems shown are
    # spelt out, and a hint looks through a bounded number of candidates.
    import difflib

    from server.definitions.problems import MAX_PROBLEMS, MAX_SUGGESTION_CANDIDATES

    compared = 0
    real = difflib.SequenceMatcher.real_quick_ratio

    def counting(self):
        nonlocal compared
        compared += 1
        return real(self)

    monkeypatch.setattr(difflib.SequenceMatcher, "real_quick_ratio", counting)
    problems = problems_of(definitions_bench.a_flood_of_bad_references(needs), JSON)
    assert len(problems) == MAX_PROBLEMS + 1
    assert compared <= MAX_PROBLEMS * MAX_SUGGESTION_CANDIDATES


def test_a_hint_among_many_candidates_is_left_out_not_searched():
    from server.definitions.problems import MAX_SUGGESTION_CANDIDATES, suggest

    assert suggest("buidl", ["build", "test"]) == " (did you mean 'build'?)"
    many = [f"job{n}" for n in range(MAX_SUGGESTION_CANDIDATES)] + ["build"]
    assert suggest("buidl", many) == ""


# ---- expressions in scripts ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("jobs:\n  b: {run: make}\n  a: {needs: b, run: 'echo ${{ needs.b.outputs.version }}'}\n", "jobs.a.run"),
        ("jobs:\n  b: {run: make}\n  a:\n    needs: b\n    steps:\n      - run: make\n"
         "      - run: |\n          echo ${{ needs.b.outputs.version }}\n", "jobs.a.steps[1].run"),
        ("jobs:\n  a: {run: 'git checkout ${{ github.sha }}'}\n", "jobs.a.run"),
        ("jobs:\n  a: {run: 'echo ${{ oops'}\n", "jobs.a.run"),
    ],
)
def test_expressions_in_scripts_are_refused_with_the_fix(body, field):
    found = only_problem(body)
    assert found["field"] == field
    assert SCRIPT_FIX in found["message"], found
    assert "line" in found and "column" in found


def test_the_fix_for_a_needs_output_in_a_script_names_the_variable():
    found = only_problem("jobs:\n  b: {run: make}\n  a: {needs: b, run: 'echo ${{ needs.b.outputs.app-version }}'}\n")
    assert found["message"] == (
        "'${{ needs.b.outputs.app-version }}' is not expanded in a script: " + SCRIPT_FIX
        + " (env: {APP_VERSION: '${{ needs.b.outputs.app-version }}'}, then \"$APP_VERSION\" in the script)"
    )
    assert (found["line"], found["column"]) == (3, 28)


@pytest.mark.parametrize(
    ("job", "field"),
    [
        ({"id": "a", "command": "echo ${{ needs.b.outputs.v }}", "depends_on": ["b"]}, "jobs[1].command"),
        ({"id": "a", "steps": [{"run": "echo ${{ github.ref }}"}]}, "jobs[1].steps[0].run"),
    ],
)
def test_seed_shape_expressions_in_commands_are_refused(job, field):
    found = only_problem(seed({"id": "b", "command": "make"}, job), JSON)
    assert found["field"] == field and SCRIPT_FIX in found["message"], found


def test_shell_parameter_expansion_is_not_an_expression():
    spec = parse("jobs:\n  a: {run: 'echo ${HOME} ${#X} ${X:-{}} $${ {} }}'}\n")
    assert spec.jobs[0].command.startswith("echo ${HOME}")


# ---- GitHub Actions keys rota does not support -----------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "field", "fragment"),
    [
        # the workflow
        ("permissions: read-all\njobs:\n  a: {run: x}\n", "permissions", "remove it"),
        # a job
        ("jobs:\n  a: {uses: org/repo/.github/workflows/x.yml@main}\n", "jobs.a.uses", "give run: or steps:"),
        ("jobs:\n  a: {run: x, with: {a: 1}}\n", "jobs.a.with", "goes with uses:"),
        ("jobs:\n  a: {run: x, secrets: inherit}\n", "jobs.a.secrets", "goes with uses:"),
        ("jobs:\n  a: {run: x, services: {db: {image: postgres}}}\n", "jobs.a.services",
         "run them from the script or use labels for a machine that has them"),
        ("jobs:\n  a: {run: x, container: node:20}\n", "jobs.a.container",
         "run them from the script or use labels for a machine that has them"),
        ("jobs:\n  a: {run: x, environment: prod}\n", "jobs.a.environment", "labels"),
        ("jobs:\n  a: {run: x, permissions: {contents: read}}\n", "jobs.a.permissions", "remove it"),
        # a step
        ("jobs:\n  a: {steps: [{uses: actions/checkout@v4}]}\n", "jobs.a.steps[0].uses", "give run:"),
        ("jobs:\n  a: {steps: [{run: x, with: {node-version: 20}}]}\n", "jobs.a.steps[0].with", "uses:"),
    ],
)
def test_github_keys_are_refused_with_what_to_write_instead(yaml_text, field, fragment):
    found = only_problem(yaml_text)
    assert found["field"] == field
    assert found["message"].startswith("rota does not support "), found
    assert fragment in found["message"], found
    assert "unknown field" not in found["message"]


@pytest.mark.parametrize(
    ("yaml_text", "field", "fragment"),
    [
        ("jobs:\n  a: {run: x, working-directory: src}\n", "jobs.a.working-directory",
         "goes on a step, or in defaults: {run: {working-directory: ...}}"),
        ("jobs:\n  a: {run: x, shell: sh}\n", "jobs.a.shell", "goes on a step, or in defaults: {run: {shell: ...}}"),
    ],
)
def test_step_keys_on_a_job_say_where_they_belong(yaml_text, field, fragment):
    found = only_problem(yaml_text)
    assert found["field"] == field and fragment in found["message"], found


def test_a_github_key_is_positioned():
    found = only_problem("jobs:\n  a:\n    run: x\n    environment: production\n")
    assert (found["field"], found["line"], found["column"]) == ("jobs.a.environment", 4, 5)


@pytest.mark.parametrize(
    ("doc", "field", "fragment"),
    [
        (seed({"id": "a", "command": "x"}, permissions="read-all"), "permissions", "remove it"),
        (seed({"id": "a", "command": "x", "services": {}}), "jobs[0].services", "labels"),
        (seed({"id": "a", "steps": [{"run": "x", "uses": "actions/checkout@v4"}]}), "jobs[0].steps[0].uses",
         "give run:"),
    ],
)
def test_seed_shape_github_keys_are_refused_the_same_way(doc, field, fragment):
    found = only_problem(doc, JSON)
    assert found["field"] == field and found["message"].startswith("rota does not support "), found
    assert fragment in found["message"]


def test_other_unknown_fields_still_get_a_suggestion():
    problems = problems_of("jobs:\n  a:\n    retires: 2\n    steps: [{nmae: x, run: y}]\nnme: w\n")
    assert [(p["field"], p["message"]) for p in problems] == [
        ("nme", "unknown field (did you mean 'name'?)"),
        ("jobs.a.retires", "unknown field (did you mean 'retries'?)"),
        ("jobs.a.steps[0].nmae", "unknown field (did you mean 'name'?)"),
    ]


# ---- scalar types -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "field", "fragment"),
    [
        ("jobs:\n  a: {run: true}\n", "jobs.a.run", "got a boolean; quote it"),
        ("jobs:\n  a: {run: 42}\n", "jobs.a.run", "got a number; quote it"),
        ("name: 123\njobs:\n  a: {run: x}\n", "name", "got a number; quote it"),
        ("jobs:\n  a: {run: x, name: 1.5}\n", "jobs.a.name", "got a number; quote it"),
        ("jobs:\n  a: {steps: [{run: false}]}\n", "jobs.a.steps[0].run", "got a boolean; quote it"),
        ("jobs:\n  a: {steps: [{run: x, name: 7}]}\n", "jobs.a.steps[0].name", "got a number; quote it"),
        ("jobs:\n  a: {run: x, labels: [1]}\n", "jobs.a.labels[0]", "got a number; quote it"),
        ("jobs:\n  a: {run: x, runs-on: 22.04}\n", "jobs.a.runs-on", "got a number; quote it"),
        ("jobs:\n  a: {run: x, needs: true}\n", "jobs.a.needs", "got a boolean; quote it"),
        ("jobs:\n  a: {run: x, needs: [1]}\n", "jobs.a.needs[0]", "got a number; quote it"),
        ("on: 1\njobs:\n  a: {run: x}\n", "on", "got a number; quote it"),
        ("on: [push, true]\njobs:\n  a: {run: x}\n", "on", "got a boolean; quote it"),
        ("jobs:\n  1: {run: x}\n", "jobs.1", "got a number; quote it"),
    ],
)
def test_a_yaml_boolean_or_number_where_a_string_belongs(yaml_text, field, fragment):
    found = only_problem(yaml_text)
    assert found["field"] == field and fragment in found["message"], found


@pytest.mark.parametrize(
    ("job", "field", "fragment"),
    [
        ({"id": "a", "command": True}, "jobs[0].command", "got a boolean; quote it"),
        ({"id": "a", "command": "x", "name": 5}, "jobs[0].name", "got a number; quote it"),
        ({"id": "a", "command": "x", "depends_on": [1]}, "jobs[0].depends_on[0]", "got a number; quote it"),
        ({"id": "a", "command": "x", "required_labels": [False]}, "jobs[0].required_labels[0]", "got a boolean"),
        ({"id": 1, "command": "x"}, "jobs[0].id", "got a number; quote it"),
    ],
)
def test_seed_shape_boolean_or_number_where_a_string_belongs(job, field, fragment):
    found = only_problem(seed(job), JSON)
    assert found["field"] == field and fragment in found["message"], found


def test_yes_is_a_string_here_so_needs_yes_names_a_job():
    # YAML 1.2 booleans: `yes` is the job id "yes", not true
    assert only_problem("jobs:\n  a: {run: x, needs: yes}\n")["message"] == "unknown job 'yes'"
    spec = parse("jobs:\n  yes: {run: x}\n  a: {run: x, needs: yes}\n")
    assert spec.jobs[1].needs == ["yes"]


@pytest.mark.parametrize(
    ("yaml_text", "line", "key"),
    [
        ("jobs:\n  a:\n    run: echo a: b\n", 3, "run"),
        ("jobs:\n  a:\n    steps:\n      - name: x\n        run: echo note: this\n", 5, "run"),
        ("jobs:\n  a:\n    steps:\n      - run: echo note: this\n", 4, "run"),
        ("name: CI: nightly\njobs:\n  a: {run: x}\n", 1, "name"),
    ],
)
def test_a_colon_in_a_plain_value_says_to_quote_it(yaml_text, line, key):
    found = only_problem(yaml_text)
    assert found["field"] == "document" and found["line"] == line
    assert "mapping values are not allowed" in found["message"]
    assert found["message"].endswith(f"; quote the value or use `{key}: |`"), found


def test_a_bad_step_does_not_hide_the_problems_of_the_steps_after_it():
    problems = problems_of(textwrap.dedent("""\
        jobs:
          build:
            steps:
              - uses: actions/checkout@v4
              - run: echo ${{ github.sha }}
        """))
    assert [(p["field"], p["line"]) for p in problems] == [("jobs.build.steps[0].uses", 4),
                                                            ("jobs.build.steps[1].run", 5)]
