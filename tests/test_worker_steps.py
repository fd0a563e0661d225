"""The workflow language in the worker daemon, rule by rule, against the
fake worker protocol: step `if:` with the status functions, step `env`,
`id` and outputs, declared job outputs, `continue-on-error`,
`working-directory`, `shell`, `timeout-minutes` and `defaults.run`, each
as the claim hands them (docs/http-api.md, "The claim and the workflow
language")."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import msgspec
import pytest

from server.models import ClaimStep, JobContexts, NeedContext, RunDefaults, StepOptions
from tests.test_worker_daemon import FakeServer, log_text, result
from tests.test_worker_sdk import job_run


def steps(*written: dict) -> dict:
    """`steps` and `step_options` of a claim, from steps as a document writes them."""
    out = {"steps": [ClaimStep(step.get("name", step["run"].splitlines()[0]), step["run"]) for step in written],
           "step_options": [msgspec.convert({k: v for k, v in step.items() if k not in ("name", "run")},
                                            StepOptions) for step in written]}
    return out


async def run_job(tmp_path: Path, command: str = "", **fields) -> tuple[FakeServer, str]:
    fake = FakeServer()
    lease = fake.enqueue(command, ttl_secs=60, **fields)
    await job_run(fake, tmp_path / "work").execute()
    return fake, lease


def reports(fake: FakeServer, lease: str) -> list[tuple[str, str]]:
    return [(index, state) for index, state, _ in fake.leases[lease].steps]


def report(fake: FakeServer, lease: str, index: str, state: str) -> dict:
    return next(body for i, s, body in fake.leases[lease].steps if (i, s) == (index, state))


# ---- if: and the status functions ---------------------------------------------------------------


async def test_after_a_failed_step_only_failure_and_always_steps_run(tmp_path):
    trace = tmp_path / "trace"
    fake, lease = await run_job(tmp_path, **steps(
        {"name": "build", "run": f"echo build >> {trace}; exit 4"},
        {"name": "test", "run": f"echo test >> {trace}"},
        {"name": "notify", "run": f"echo notify >> {trace}", "if": "failure()"},
        {"name": "cleanup", "run": f"echo cleanup >> {trace}", "if": "always()"},
        {"name": "on success", "run": f"echo success >> {trace}", "if": "success()"},
    ))
    assert trace.read_text() == "build\nnotify\ncleanup\n"
    kind, body = result(fake, lease)
    assert kind == "fail" and body["error"] == "exit code 4 in step 'build'" and body["retryable"] is True
    assert reports(fake, lease) == [("0", "running"), ("0", "failed"), ("1", "skipped"), ("2", "running"),
                                    ("2", "completed"), ("3", "running"), ("3", "completed"), ("4", "skipped")]
    assert report(fake, lease, "1", "skipped")["error_message"] == "an earlier step failed"
    assert report(fake, lease, "4", "skipped")["error_message"] == "if: 'success()' is false"
    log = log_text(fake, lease)
    assert "::step:: notify\n" in log and "::step:: test" not in log  # a skipped step has no marker


async def test_failure_steps_are_skipped_when_nothing_failed(tmp_path):
    fake, lease = await run_job(tmp_path, **steps(
        {"name": "build", "run": "true"},
        {"name": "notify", "run": "exit 9", "if": "failure()"},
    ))
    assert result(fake, lease)[0] == "complete"
    assert reports(fake, lease)[-1] == ("1", "skipped")


async def test_a_condition_reads_the_jobs_contexts_with_an_implicit_success(tmp_path):
    trace = tmp_path / "trace"
    contexts = JobContexts(needs={"plan": NeedContext("success", {"go": "yes"})}, inputs={"env": "prod"},
                           matrix={"os": "linux"}, env={"MODE": "fast"})
    fake, lease = await run_job(tmp_path, contexts=contexts, env={"MODE": "fast"}, env_resolved=True, **steps(
        {"name": "a", "run": f"echo a >> {trace}", "if": "needs.plan.outputs.go == 'yes' && inputs.env == 'prod'"},
        {"name": "b", "run": f"echo b >> {trace}", "if": "matrix.os == 'mac'"},
        {"name": "c", "run": f"echo c >> {trace}", "if": "env.MODE == 'fast' && strategy.job-total == 1"},
        {"name": "d", "run": f"echo d >> {trace}", "if": "run.attempt == 1 || true"},
    ))
    assert trace.read_text() == "a\nc\nd\n"
    assert report(fake, lease, "1", "skipped")["error_message"] == "if: \"matrix.os == 'mac'\" is false"
    assert result(fake, lease)[0] == "complete"


async def test_a_condition_that_cannot_be_evaluated_fails_its_step(tmp_path):
    fake, lease = await run_job(tmp_path, **steps(
        {"name": "a", "run": "echo never", "if": "fromJSON('not json')"},
        {"name": "after", "run": "echo after", "if": "always()"},
    ))
    kind, body = result(fake, lease)
    assert kind == "fail" and body["error"].startswith("cannot evaluate if: fromJSON(): not JSON")
    assert body["error"].endswith(" in step 'a'")
    assert "never" not in log_text(fake, lease) and "after\n" in log_text(fake, lease)
    assert reports(fake, lease)[:2] == [("0", "running"), ("0", "failed")]


# ---- env, ids and outputs -------------------------------------------------------------------------


async def test_step_env_is_rendered_over_the_jobs_and_reaches_the_script_only_as_variables(tmp_path):
    hostile = "$(touch pwned); `touch pwned`"
    contexts = JobContexts(needs={"build": NeedContext("success", {"v": "1.2", "evil": hostile})},
                           matrix={"os": "linux"})
    fake, lease = await run_job(tmp_path, contexts=contexts, env={"SHARED": "job", "JOB": "j"}, env_resolved=True,
                                upstream_outputs={"build": {"v": "1.2", "evil": hostile}}, **steps(
        {"name": "one", "run": 'echo "one=$SHARED $JOB $V $OS"',
         "env": {"SHARED": "step", "V": "v${{ needs.build.outputs.v }}", "OS": "${{ matrix.os }}-${{ env.JOB }}"}},
        {"name": "two", "run": 'echo "two=$SHARED $EVIL"', "env": {"EVIL": "${{ needs.build.outputs.evil }}"}},
    ))
    assert result(fake, lease)[0] == "complete"
    log = log_text(fake, lease)
    assert "one=step j v1.2 linux-j\n" in log and f"two=job {hostile}\n" in log
    assert not list(tmp_path.rglob("pwned"))


async def test_a_steps_outputs_are_steps_id_outputs_and_each_step_writes_its_own_file(tmp_path):
    fake, lease = await run_job(tmp_path, **steps(
        {"name": "version", "id": "v", "run": 'echo "version=1.2" >> "$GITHUB_OUTPUT"; echo "late=v" >> "$ROTA_OUTPUT"'},
        {"name": "check", "run": 'echo "seen=[$(cat "$ROTA_OUTPUT")] $VERSION $OUTCOME"; echo "late=check" >> "$ROTA_OUTPUT"',
         "env": {"VERSION": "${{ steps.v.outputs.version }}", "OUTCOME": "${{ steps.v.outcome }}"}},
    ))
    assert "seen=[] 1.2 success\n" in log_text(fake, lease)
    # no declarations: every key the steps wrote, a later step's winning
    assert result(fake, lease) == ("complete", {"outputs": {"version": "1.2", "late": "check"}})


async def test_declared_outputs_are_the_only_outputs(tmp_path):
    fake, lease = await run_job(tmp_path, outputs={"version": "${{ steps.v.outputs.version }}",
                                                   "result": "${{ steps.v.conclusion }}/${{ steps.gone.outcome }}"},
                                **steps(
        {"name": "version", "id": "v", "run": 'echo "version=2.0" >> "$ROTA_OUTPUT"; echo "noise=1" >> "$ROTA_OUTPUT"'},
        {"name": "gone", "id": "gone", "run": "true", "if": "false"},
    ))
    assert result(fake, lease) == ("complete", {"outputs": {"version": "2.0", "result": "success/skipped"}})


async def test_declared_outputs_of_a_plain_job_read_its_contexts(tmp_path):
    contexts = JobContexts(matrix={"os": "mac"}, env={"V": "3"})
    fake, lease = await run_job(tmp_path, 'echo "raw=1" >> "$ROTA_OUTPUT"', contexts=contexts, env={"V": "3"},
                                env_resolved=True, outputs={"where": "${{ matrix.os }}-${{ env.V }}"})
    assert result(fake, lease) == ("complete", {"outputs": {"where": "mac-3"}})


async def test_a_declaration_that_cannot_be_evaluated_fails_the_job_for_good(tmp_path):
    fake, lease = await run_job(tmp_path, "true", outputs={"v": "${{ fromJSON('{') }}"})
    kind, body = result(fake, lease)
    assert kind == "fail" and body["retryable"] is False
    assert body["error"].startswith("cannot evaluate the job's outputs: fromJSON(): not JSON")


async def test_a_step_env_that_cannot_be_evaluated_fails_the_step_not_the_rest(tmp_path):
    fake, lease = await run_job(tmp_path, **steps(
        {"name": "bad", "run": "echo never", "env": {"X": "${{ fromJSON('[') }}"}, "continue-on-error": True},
        {"name": "cleanup", "run": "echo cleaned", "if": "always()"},
    ))
    kind, body = result(fake, lease)
    assert kind == "fail" and body["error"].startswith("cannot evaluate the step's fields: fromJSON(): not JSON")
    log = log_text(fake, lease)
    assert "never" not in log and "cleaned\n" in log and "rota: cannot evaluate the step's fields" in log


# ---- continue-on-error --------------------------------------------------------------------------


async def test_a_failure_continue_on_error_lets_pass_is_an_outcome_not_a_conclusion(tmp_path):
    contexts = JobContexts(matrix={"experimental": True})
    fake, lease = await run_job(tmp_path, contexts=contexts, **steps(
        {"name": "flaky", "id": "f", "run": "exit 3", "continue-on-error": "${{ matrix.experimental }}"},
        {"name": "next", "run": 'echo "next $O/$C"', "env": {"O": "${{ steps.f.outcome }}", "C": "${{ steps.f.conclusion }}"}},
        {"name": "notify", "run": "echo notified", "if": "failure()"},
    ))
    assert result(fake, lease) == ("complete", {})
    assert "next failure/success\n" in log_text(fake, lease)
    assert reports(fake, lease)[1] == ("0", "failed") and reports(fake, lease)[-1] == ("2", "skipped")


# ---- working-directory, defaults.run ------------------------------------------------------------


async def test_working_directory_is_inside_the_jobs_and_defaults_give_it(tmp_path):
    fake, lease = await run_job(tmp_path, defaults=RunDefaults(working_directory="app"), **steps(
        {"name": "make it", "run": "mkdir -p app/sub", "working-directory": "."},
        {"name": "default", "run": 'echo "in=${PWD##*/work}"'},
        {"name": "own", "run": 'echo "in=${PWD##*/work}"', "working-directory": "app/${{ env.SUB }}", "env": {"SUB": "sub"}},
    ))
    assert result(fake, lease)[0] == "complete"
    assert "in=/app\n" in log_text(fake, lease) and "in=/app/sub\n" in log_text(fake, lease)


@pytest.mark.parametrize(("directory", "message"), [
    ("..", "working-directory '..' is outside the job's working directory"),
    ("/etc", "working-directory '/etc' is outside the job's working directory"),
    ("out", "working-directory 'out' is outside the job's working directory"),  # a link out of it
    ("missing", "working-directory 'missing' is not a directory in the job's working directory"),
])
async def test_a_working_directory_outside_the_job_or_missing_fails_the_step(tmp_path, directory, message):
    outside = tmp_path / "outside"
    outside.mkdir()
    fake, lease = await run_job(tmp_path, **steps(
        {"name": "link", "run": f"ln -s {outside} out"},
        {"name": "step", "run": "touch here", "working-directory": directory},
    ))
    kind, body = result(fake, lease)
    assert kind == "fail" and body["error"].startswith(message) and body["error"].endswith(" in step 'step'")
    assert not (outside / "here").exists() and not list(tmp_path.rglob("here"))


async def test_a_plain_job_takes_defaults_run(tmp_path):
    fake, lease = await run_job(tmp_path, 'mkdir -p sub 2>/dev/null; echo "$0"; print("python here")',
                                defaults=RunDefaults(shell="python"))
    # python ran the script: the shell line is a syntax error for it, so it fails
    kind, body = result(fake, lease)
    assert kind == "fail" and "SyntaxError" in body["error"]


# ---- shell -------------------------------------------------------------------------------------


async def test_each_shell_runs_the_step_as_github_defines_it(tmp_path):
    fake, lease = await run_job(tmp_path, defaults=RunDefaults(shell="sh"), **steps(
        {"name": "default shell", "run": 'echo "default:$0"; false | true; echo "pipefail off under sh"'},
        {"name": "bash", "run": 'echo "bash:${0##*/}"; false | true; echo "unreachable"', "shell": "bash",
         "continue-on-error": True},
        {"name": "python", "run": "import os, sys\nprint('python:', os.path.basename(sys.argv[0]), os.environ['X'])",
         "shell": "python", "env": {"X": "from env"}},
        {"name": "custom", "run": "print \"perl:ok\\n\";", "shell": "perl {0}"},
    ))
    log = log_text(fake, lease)
    assert "default:" in log and "pipefail off under sh\n" in log
    assert "bash:step-1.sh\n" in log and "unreachable" not in log
    assert "python: step-2.py from env\n" in log
    if shutil.which("perl"):
        assert "perl:ok\n" in log
    assert reports(fake, lease)[2:4] == [("1", "running"), ("1", "failed")]


async def test_without_a_shell_a_step_runs_as_it_always_did(tmp_path):
    fake, lease = await run_job(tmp_path, **steps({"name": "plain", "run": 'echo "$0"; false | true; echo no'}))
    kind, body = result(fake, lease)
    assert kind == "fail" and "bash\n" in log_text(fake, lease) and "no\n" not in log_text(fake, lease)
    assert not list((tmp_path / "work").rglob("scripts"))


async def test_a_shell_that_cannot_be_read_or_started_fails_its_step(tmp_path):
    fake, lease = await run_job(tmp_path, **steps(
        {"name": "quotes", "run": "true", "shell": "perl 'unclosed {0}", "continue-on-error": True},
        {"name": "absent", "run": "true", "shell": "no-such-shell-here {0}", "if": "always()"},
    ))
    kind, body = result(fake, lease)
    # (continue-on-error is not consulted: the step could not run as written)
    assert kind == "fail"
    assert body["error"] == "shell \"perl 'unclosed {0}\" cannot be read as a command: No closing quotation in step 'quotes'"
    assert "rota: cannot start the step: [Errno 2] No such file or directory" in log_text(fake, lease)
    assert reports(fake, lease) == [("0", "running"), ("0", "failed"), ("1", "running"), ("1", "failed")]


# ---- timeout-minutes --------------------------------------------------------------------------


async def test_a_step_timeout_stops_that_step_and_the_job_goes_on(tmp_path):
    fake, lease = await run_job(tmp_path, **steps(
        {"name": "slow", "run": "sleep 300", "timeout-minutes": 0.02},
        {"name": "cleanup", "run": "echo cleaned", "if": "always()"},
    ))
    kind, body = result(fake, lease)
    assert kind == "fail" and body["error"] == "timed out after 1.2s (its timeout-minutes) in step 'slow'"
    assert report(fake, lease, "0", "failed")["error_message"] == "timed out after 1.2s: killed by SIGTERM"
    assert "cleaned\n" in log_text(fake, lease)


async def test_a_step_timeout_continue_on_error_lets_pass(tmp_path):
    fake, lease = await run_job(tmp_path, **steps(
        {"name": "slow", "run": "sleep 300", "timeout-minutes": "${{ 0.01 }}", "continue-on-error": True},
        {"name": "next", "run": "echo next"},
    ))
    assert result(fake, lease)[0] == "complete" and "next\n" in log_text(fake, lease)


async def test_a_stopped_job_runs_no_further_step(tmp_path):
    fake, lease = await run_job(tmp_path, timeout_secs=1, **steps(
        {"name": "hang", "run": "sleep 300"},
        {"name": "cleanup", "run": "echo cleaned", "if": "always()"},
    ))
    kind, body = result(fake, lease)
    assert kind == "fail" and body["error"] == "timed out after 1s"
    assert "cleaned" not in log_text(fake, lease)


# ---- older servers ---------------------------------------------------------------------------------


async def test_a_claim_without_contexts_still_runs_its_steps(tmp_path):
    fake, lease = await run_job(tmp_path, upstream_outputs={"build": {"v": "7"}},
                                steps=[ClaimStep("one", 'echo "v=$V"')], env={"V": "${{ needs.build.outputs.v }}"})
    assert result(fake, lease)[0] == "complete" and "v=7\n" in log_text(fake, lease)


async def test_scripts_of_steps_with_a_shell_are_the_workers_files(tmp_path):
    """Each step's script goes to scripts/ in the job's directory, created
    afresh: a job cannot have the worker write through a link it made."""
    fake, lease = await run_job(tmp_path, **steps(
        {"name": "one", "run": 'ls -ld "$(dirname "$0")" "$0" | cut -c1-10', "shell": "bash"},
    ))
    lines = [line for line in log_text(fake, lease).splitlines() if not line.startswith("::")]
    assert lines == ["drwx------", "-rw-------"] or sorted(lines) == sorted(["drwx------", "-rw-------"])
    assert os.path.isdir(tmp_path / "work") and not [p for p in (tmp_path / "work").iterdir() if p.is_dir()]
