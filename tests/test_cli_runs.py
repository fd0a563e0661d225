"""The run commands of `rota` (issue 8) against the real app in process:
each command is parsed as `rota` parses it and run on an ASGI client, while
the tests drive workers through the protocol by hand."""

from __future__ import annotations

import json
import re

import pytest

from tests.test_runs import claim, finish, log, put, start

FLAKY = """
name: flaky
jobs:
  build:
    retries: 4
    run: make
  test:
    needs: build
    run: make test
"""


async def test_runs_lists_newest_first_filters_by_tag_and_prints_json(api, rota):
    await put(api, "ci")
    first = await start(api, "ci", tags={"env": "dev"})
    second = await start(api, "ci", tags={"env": "prod"})
    code, out, err = await rota("runs", "ci", "--json")
    assert code == 0, err
    assert [r["run_id"] for r in json.loads(out)] == [second["run_id"], first["run_id"]]
    code, out, _ = await rota("runs", "--tag", "env=prod", "--json")
    assert [r["run_id"] for r in json.loads(out)] == [second["run_id"]]
    code, out, _ = await rota("runs", "ci", "--status", "queued")
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["RUN", "WORKFLOW", "#", "STATUS"]
    assert [row.split()[:4] for row in rows] == [[second["run_id"], "ci", "2", "queued"],
                                                 [first["run_id"], "ci", "1", "queued"]]


async def test_status_of_a_workflow_is_its_latest_run_and_not_started_before_that(api, rota):
    await put(api, "ci")
    code, out, _ = await rota("status", "ci")
    assert (code, out) == (0, "ci (pipeline): not started (start it: rota run ci)\n")
    run = await start(api, "ci")
    code, out, _ = await rota("status", "ci")
    assert out.splitlines()[0] == f"ci (pipeline) run #1 ({run['run_id']}): queued"
    assert [line.split()[:2] for line in out.splitlines()[2:]] == [["build", "queued"], ["test", "queued"],
                                                                   ["deploy", "queued"]]
    code, out, _ = await rota("status", run["run_id"], "--json")  # a run id names the run itself
    assert (code, json.loads(out)["run_id"], json.loads(out)["number"]) == (0, run["run_id"], 1)


async def test_a_job_in_backoff_shows_its_retry_countdown(api, rota):
    await put(api, "flaky", FLAKY.replace("retries: 4", "retries: 4\n    backoff: {fixed: {delay_secs: 600}}"))
    await start(api, "flaky")
    await finish(api, await claim(api), ok=False, retryable=True)
    code, out, _ = await rota("status", "flaky")
    build = next(line for line in out.splitlines() if line.startswith("build"))
    # counting down from 600 s: however slow the machine, not minutes gone yet
    found = re.match(r"build\s+retry 1/4 in (\d+)s\s+1\s", build)
    assert found and 480 <= int(found[1]) <= 600, out


async def test_logs_mark_each_attempt_with_its_worker(api, rota):
    await put(api, "flaky", FLAKY)
    await start(api, "flaky")
    first = await claim(api, "w-one")
    await log(api, first, 0, "first try\n")
    await finish(api, first, ok=False, retryable=True)
    second = await claim(api, "w-two")
    await log(api, second, 0, "second ")
    await log(api, second, 1, "try\n")
    await finish(api, second)
    code, out, _ = await rota("logs", "flaky", "build")
    assert (code, out) == (0, "--- attempt 0 on w-one ---\nfirst try\n--- attempt 1 on w-two ---\nsecond try\n")
    code, out, _ = await rota("logs", "flaky", "build", "--attempt", "1")
    assert out == "second try\n"
    test = await claim(api, "w-one")
    await log(api, test, 0, "tested")
    await finish(api, test)
    code, out, _ = await rota("logs", "flaky")  # no job: every job's, each line behind its name
    assert out.splitlines() == ["build | --- attempt 0 on w-one ---", "build | first try",
                                "build | --- attempt 1 on w-two ---", "build | second try", "test | tested"]


async def test_logs_follow_of_a_finished_job_prints_it_and_its_state(api, rota):
    await put(api, "flaky", FLAKY)
    await start(api, "flaky")
    job = await claim(api)
    await log(api, job, 0, "done\n")
    await finish(api, job)
    code, out, err = await rota("logs", "-f", "flaky", "build")
    assert (code, out, err) == (0, "done\n", "build: success\n")


async def test_retry_a_failed_run_and_a_single_job(api, rota):
    await put(api, "flaky", FLAKY.replace("retries: 4", "retries: 0"))
    run = await start(api, "flaky")
    await finish(api, await claim(api), ok=False)
    code, out, _ = await rota("retry", run["run_id"])
    assert (code, out) == (0, f"retrying flaky run #1 ({run['run_id']})\n")
    assert (await api.get(f"/api/runs/{run['run_id']}")).json()["jobs"][0]["status"] == "queued"
    code, _, err = await rota("retry", run["run_id"], "--job", "build")  # the run is going again
    assert code == 2 and "run_active" in err
    await finish(api, await claim(api), ok=False)
    code, out, _ = await rota("retry", "flaky", "--job", "build")  # a workflow: its latest run
    assert out == f"retrying job build of flaky run #1 ({run['run_id']})\n"


async def test_cancel_says_when_there_was_nothing_to_cancel(api, rota):
    await put(api, "ci")
    code, out, _ = await rota("cancel", "ci")
    assert out == "workflow ci has not run: nothing to cancel (no-op)\n"
    run = await start(api, "ci")
    label = f"ci run #1 ({run['run_id']})"
    code, out, _ = await rota("cancel", "ci", "--job", "deploy")
    assert (code, out) == (0, f"cancel requested for job deploy of {label}\n")
    jobs = {j["id"]: j["status"] for j in (await api.get(f"/api/runs/{run['run_id']}")).json()["jobs"]}
    assert jobs == {"build": "queued", "test": "queued", "deploy": "cancelled"}  # the rest goes on
    code, out, _ = await rota("cancel", run["run_id"], "--job", "deploy")
    assert out == f"job deploy of {label} already finished (cancelled): nothing to cancel (no-op)\n"
    code, out, _ = await rota("cancel", run["run_id"])
    assert out == f"cancel requested for {label}\n"
    code, out, _ = await rota("cancel", "ci")
    assert (code, out) == (0, f"{label} already finished (cancelled): nothing to cancel (no-op)\n")


async def test_run_with_inputs_and_tags(api, rota, capsys):
    await put(api, "ci")
    code, out, _ = await rota("run", "ci", "--input", "VERSION=1.2", "--tag", "env=prod", "--json")
    run = json.loads(out)
    assert (code, run["inputs"], run["tags"], run["triggered_by"]) == (0, {"VERSION": "1.2"}, {"env": "prod"}, "cli")
    code, out, _ = await rota("run", "ci")
    assert re.fullmatch(r"started ci run #2: [0-9a-f-]{36}\n", out)
    with pytest.raises(SystemExit) as info:
        await rota("run", "ci", "--input", "novalue")
    assert info.value.code == 2 and "'novalue' is not --input KEY=VALUE" in capsys.readouterr().err


async def test_submit_with_an_id_gives_numbered_runs_of_one_workflow(api, rota, tmp_path):
    doc = tmp_path / "ci.yml"
    doc.write_text(FLAKY)
    code, first, _ = await rota("submit", str(doc), "--id", "stable")
    code, second, _ = await rota("submit", str(doc), "--id", "stable")
    assert first != second
    runs = (await api.get("/api/workflows/stable/runs")).json()["runs"]
    assert [(r["run_id"], r["number"]) for r in runs] == [(second.strip(), 2), (first.strip(), 1)]
    code, out, _ = await rota("submit", str(doc), "--id", "later", "--no-run")
    assert (code, out) == (0, "later\n")
    assert (await api.get("/api/workflows/later")).json()["status"] == "idle"


async def test_a_one_off_workflow_id_and_a_run_id_both_resolve(api, rota, tmp_path):
    doc = tmp_path / "ci.yml"
    doc.write_text(FLAKY)
    code, out, _ = await rota("submit", str(doc))
    workflow_id = out.strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", workflow_id)  # shaped like a run id: the server is asked
    code, out, _ = await rota("status", workflow_id)
    assert code == 0 and out.startswith(f"{workflow_id} (flaky) run #1 (")
    code, _, err = await rota("status", "00000000-0000-4000-8000-000000000000")
    assert (code, err) == (2, "rota: error ref_not_found: no run or workflow '00000000-0000-4000-8000-000000000000',"
                              " nor a one-off workflow of that name\n")


async def test_delete_refused_while_active_says_how_to_go_on(api, rota):
    await put(api, "ci")
    await start(api, "ci")
    code, _, err = await rota("delete", "ci")
    assert code == 2 and "workflow_active" in err and "rota cancel ci" in err
    assert (await rota("cancel", "ci"))[0] == 0
    code, out, _ = await rota("delete", "ci")
    assert (code, out) == (0, "deleted workflow ci and its finished runs\n")
    assert (await api.get("/api/workflows/ci")).status_code == 404


async def test_dead_letters_list_and_replay(api, rota):
    await put(api, "flaky", FLAKY.replace("retries: 4", "retries: 0"))
    run = await start(api, "flaky")
    await finish(api, await claim(api), ok=False, error="disk full")
    code, out, _ = await rota("dead-letters", "--json")
    assert [(d["run_id"], d["job_id"], d["error"]) for d in json.loads(out)] == [(run["run_id"], "build", "disk full")]
    code, out, _ = await rota("dead-letters")
    assert out.splitlines()[1].split()[:3] == [run["run_id"], "build", "flaky"]
    code, out, _ = await rota("dead-letters", "--replay")
    assert out.splitlines()[1].split() == [run["run_id"], "build", "retried"]
    assert (await api.get(f"/api/runs/{run['run_id']}")).json()["jobs"][0]["status"] == "queued"


async def test_workers_shows_slots_version_and_host(api, rota):
    await api.post("/api/workers/register", json={"worker_id": "box-1", "labels": ["gpu"], "exclusive": True,
                                                  "concurrency": 3, "version": "0.9.1", "host": "box-1.lan"})
    await api.post("/api/workers/register", json={"worker_id": "seed-w", "labels": []})
    code, out, err = await rota("workers")
    assert code == 0, err
    header, *rows = [line.split() for line in out.splitlines()]
    assert header == ["WORKER", "STATUS", "LABELS", "FREE", "JOBS", "VERSION", "HOST", "LAST", "SEEN"]
    by_id = {row[0]: row for row in rows}
    assert by_id["box-1"][1:8] == ["idle", "gpu", "(exclusive)", "3/3", "-", "0.9.1", "box-1.lan"]
    assert by_id["seed-w"][1:7] == ["idle", "-", "-", "-", "-", "-"]


async def test_logs_print_the_jobs_own_entries_with_their_level_and_filter_by_it(api, rota):
    await put(api, "flaky", FLAKY)
    await start(api, "flaky")
    job = await claim(api)
    await log(api, job, 0, "compiling\n")
    lid = job["lease"]["lease_id"]
    sent = await api.post(f"/api/jobs/{lid}/log", json={"logs": [{"level": "debug", "message": "cache hit"},
                                                                 {"level": "warn", "message": "disk 91% full"}]})
    assert sent.status_code == 200, sent.text
    await finish(api, job)
    code, out, _ = await rota("logs", "flaky", "build")
    assert (code, out) == (0, "compiling\n[debug] cache hit\n[warn] disk 91% full\n")
    code, out, _ = await rota("logs", "flaky", "build", "--level", "warn")
    assert (code, out) == (0, "[warn] disk 91% full\n")
    code, out, _ = await rota("logs", "-f", "flaky", "build", "--level", "info")
    assert (code, out) == (0, "[warn] disk 91% full\n")


async def test_status_shows_what_jobs_reported_progress_steps_resources_annotations_notes(api, rota):
    await put(api, "flaky", FLAKY)
    run = await start(api, "flaky")
    job = await claim(api)
    lease = f"/api/jobs/{job['lease']['lease_id']}"
    for call, body in (("progress", {"progress_percent": 45, "current_step_name": "batch 3"}),
                       ("steps/0/running", {"name": "compile"}),
                       ("steps/0/completed", {"name": "compile", "exit_code": 0}),
                       ("steps/1/running", {"name": "unit tests"}),
                       ("steps/1/failed", {"name": "unit tests", "exit_code": 3, "error_message": "3 failed"}),
                       ("resources", {"cpu_percent": 50, "memory_bytes": 150 * 2**20}),
                       ("annotate", {"coverage": "91%"}),
                       ("annotate", {"markdown": "**3 tests failed**\nsee log", "style": "error",
                                     "context": "tests"})):
        sent = await api.post(f"{lease}/{call}", json=body)
        assert sent.status_code == 200, (call, sent.text)
    code, out, err = await rota("status", run["run_id"])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].split() == ["JOB", "STATUS", "ATTEMPT", "DURATION", "PROGRESS", "ERROR"]
    assert lines[2].split()[:2] == ["build", "running"] and "45% unit tests" in lines[2]  # the step now running
    at = lines.index("build:")
    assert lines[at + 1].startswith("  step compile completed ") and lines[at + 1].endswith(" exit 0")
    assert lines[at + 2].startswith("  step unit tests failed ") and lines[at + 2].endswith(" exit 3: 3 failed")
    assert lines[at + 3] == "  resources: cpu 50% (peak 50%), rss 150.0 MiB (peak 150.0 MiB)"
    assert lines[at + 4] == "  annotations: coverage=91%"
    assert lines[-3:] == ["notes:", "[error] tests (from build)", "  **3 tests failed** see log"]


async def test_status_says_what_a_gate_waits_for(api, rota):
    await put(api, "hold", "name: hold\njobs:\n  hold:\n    wait: {event: go}\n")
    run = await start(api, "hold")
    code, out, _ = await rota("status", run["run_id"])
    assert "hold:\n  waiting for event go until " in out
    assert f"release it with `rota approve {run['run_id']} hold` or POST /api/events/go" in out


async def test_submit_with_an_id_and_a_reused_key_changes_nothing(api, rota, tmp_path):
    path = tmp_path / "ci.yml"
    path.write_text("jobs:\n  a: {run: one}\n")
    code, out, err = await rota("submit", str(path), "--id", "ci", "--idempotency-key", "k2")
    assert code == 0, err
    code, again, _ = await rota("submit", str(path), "--id", "ci", "--idempotency-key", "k2")
    assert (code, again) == (0, out)  # the same run
    path.write_text("jobs:\n  a: {run: two}\n")
    code, _, err = await rota("submit", str(path), "--id", "ci", "--idempotency-key", "k2")
    assert code == 2 and "idempotency_key_reused" in err
    assert (await api.get("/api/workflows/ci")).json()["jobs"][0]["command"] == "one"
    assert len((await api.get("/api/runs")).json()["runs"]) == 1


async def test_retry_of_a_run_that_succeeded_says_it_is_a_no_op(api, rota):
    await put(api, "one", "jobs:\n  a: {run: x}\n")
    run = await start(api, "one")
    await finish(api, await claim(api))
    code, out, _ = await rota("retry", run["run_id"])
    assert (code, out) == (0, f"every job of one run #1 ({run['run_id']}) succeeded: nothing to retry (no-op)\n")
    events = (await api.get(f"/api/runs/{run['run_id']}/events", params={"type": "run"})).json()
    assert not any("retry" in e["detail"] for e in events)


async def test_logs_print_a_log_longer_than_a_page_whole(api, rota):
    await put(api, "flaky", FLAKY)
    await start(api, "flaky")
    job = await claim(api)
    lines = [f"{i:04d} " + "p" * 60_000 + "\n" for i in range(40)]  # 2.4 MB: three pages or more
    for seq, line in enumerate(lines):
        await log(api, job, seq, line)
    await finish(api, job)
    code, out, _ = await rota("logs", "flaky", "build")
    assert code == 0 and out == "".join(lines)
    code, out, _ = await rota("logs", "flaky")  # every job's, each line behind its name
    assert out.splitlines()[:40] == [f"build | {line[:-1]}" for line in lines]


async def test_a_runs_run_name_is_its_name_in_the_cli(api, rota):
    await put(api, "deploy", "name: deploy\nrun-name: Deploy ${{ inputs.version }} to ${{ run.tags.env }}\n"
                             "jobs:\n  go: {run: ./deploy}\n")
    started = await start(api, "deploy", inputs={"version": "1.2"}, tags={"env": "prod"})
    assert started["name"] == "Deploy 1.2 to prod"
    code, out, err = await rota("runs", "deploy")
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split()[-1] == "NAME" and row.endswith("Deploy 1.2 to prod")
    code, out, err = await rota("status", "deploy")
    assert out.splitlines()[0] == f"deploy (Deploy 1.2 to prod) run #1 ({started['run_id']}): queued"
    await put(api, "plain", "name: Plain\njobs:\n  go: {run: x}\n")
    assert (await start(api, "plain"))["name"] == "Plain"
