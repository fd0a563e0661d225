"""Matrix jobs over HTTP, on both stores: GitHub's expansion (include,
exclude), each combination a job of the run routed by its own labels, the
matrix job an aggregate its dependents wait for, fail-fast, max-parallel
under many claimers, dynamic matrices from a job's outputs, retries."""

from __future__ import annotations

import asyncio

from tests.test_conditions import claim_job, jobs_of, run_view, statuses
from tests.test_runs import claim, finish, put, start

ROUTED = """
jobs:
  build:
    runs-on: ${{ matrix.os }}
    strategy:
      matrix:
        os: [linux, mac]
        py: ['3.10', '3.11', '3.12']
        exclude:
          - os: mac
            py: '3.10'
        include:
          - os: linux
            py: '3.12'
            coverage: true
          - os: mac
            py: '3.13'
    env:
      PY: ${{ matrix.py }}
    run: make test
  publish:
    needs: build
    run: ./publish
"""


async def test_a_matrix_runs_each_combination_on_its_own_labels(api):
    await put(api, "routed", ROUTED)
    run = (await start(api, "routed"))["run_id"]
    jobs = await jobs_of(api, run)
    build = jobs["build"]
    assert build["status"] == "running"
    assert build["combinations"] == ["build-linux-3.10", "build-linux-3.11", "build-linux-3.12-true",
                                     "build-mac-3.11", "build-mac-3.12", "build-mac-3.13"]
    combo = jobs["build-linux-3.12-true"]
    assert combo["name"] == "build (linux, 3.12, true)" and combo["matrix_of"] == "build"
    assert combo["matrix"] == {"os": "linux", "py": "3.12", "coverage": True}
    assert combo["required_labels"] == ["linux"] and combo["depends_on"] == []
    assert jobs["publish"]["status"] == "queued"

    got: dict[str, list[str]] = {"linux": [], "mac": []}
    for os_label in ("mac", "linux"):
        # exclusive: a worker for its label's jobs only (not publish, which has none)
        while (claimed := (await api.post("/api/jobs/claim", json={
                "worker_id": f"w-{os_label}", "labels": [os_label], "exclusive": True})).json()) is not None:
            job = claimed["job"]
            assert job["required_labels"] == [os_label], job["job_id"]
            assert job["env"] == {"PY": job["contexts"]["matrix"]["py"]} and job["env_resolved"] is True
            assert job["contexts"]["strategy"]["job-total"] == 6
            got[os_label].append(job["job_id"])
            await finish(api, claimed, outputs={"built": job["job_id"]})
            if job["job_id"] != "build-mac-3.13":
                assert (await jobs_of(api, run))["publish"]["status"] == "queued"
    assert got == {"linux": ["build-linux-3.10", "build-linux-3.11", "build-linux-3.12-true"],
                   "mac": ["build-mac-3.11", "build-mac-3.12", "build-mac-3.13"]}
    jobs = await jobs_of(api, run)
    assert jobs["build"]["status"] == "success"
    # the last combination to succeed wins a key (GitHub's)
    assert jobs["build"]["outputs"] == {"built": "build-linux-3.12-true"}
    publish = await claim_job(api, "publish")
    assert publish["job"]["contexts"]["needs"]["build"]["result"] == "success"
    assert publish["job"]["upstream_outputs"] == {"build": {"built": "build-linux-3.12-true"}}
    await finish(api, publish)
    assert (await run_view(api, run))["status"] == "success"


FAIL_FAST = """
jobs:
  test:
    strategy:
      fail-fast: ${{ inputs.fail_fast == 'yes' }}
      matrix:
        n: [1, 2, 3]
    run: ./test
  after:
    needs: test
    if: always()
    run: ./report
"""


async def test_fail_fast_cancels_the_other_combinations(api):
    await put(api, "ff", FAIL_FAST)
    run = (await start(api, "ff", inputs={"fail_fast": "yes"}))["run_id"]
    first, second = await claim(api), await claim(api)
    await finish(api, first, ok=False)
    got = await statuses(api, run)
    assert got == {"test": "failure", "test-1": "failure", "test-2": "cancelled", "test-3": "cancelled",
                   "after": "queued"}
    assert (await jobs_of(api, run))["test-3"]["error"] is None
    # the running one hears it from its heartbeat
    beat = await api.post(f"/api/jobs/{second['lease']['lease_id']}/heartbeat")
    assert beat.json()["cancelled"] is True
    after = await claim_job(api, "after")
    assert after["job"]["contexts"]["needs"]["test"]["result"] == "failure"
    await finish(api, after)
    assert (await run_view(api, run))["status"] == "failure"


async def test_without_fail_fast_the_others_go_on(api):
    await put(api, "ff", FAIL_FAST)
    run = (await start(api, "ff", inputs={"fail_fast": "no"}))["run_id"]
    await finish(api, await claim(api), ok=False)
    await finish(api, await claim(api))
    assert (await statuses(api, run))["test"] == "running"
    await finish(api, await claim(api))
    assert (await statuses(api, run))["test"] == "failure"


async def test_a_continue_on_error_combination_neither_fails_fast_nor_fails_the_run(api):
    await put(api, "exp", """
jobs:
  test:
    continue-on-error: ${{ matrix.experimental }}
    strategy:
      matrix:
        version: [10, 12]
        experimental: [false]
        include:
          - version: 13
            experimental: true
    run: ./test
""")
    run = (await start(api, "exp"))["run_id"]
    claims = {}
    for _ in range(3):
        got = await claim(api)
        claims[got["job"]["job_id"]] = got
    assert set(claims) == {"test-10-false", "test-12-false", "test-13-true"}
    assert claims["test-13-true"]["job"]["continue_on_error"] is True
    await finish(api, claims["test-13-true"], ok=False)
    assert (await statuses(api, run))["test-10-false"] == "running"
    await finish(api, claims["test-10-false"])
    await finish(api, claims["test-12-false"])
    view = await run_view(api, run)
    assert view["status"] == "success"
    assert {j["id"]: j["status"] for j in view["jobs"]}["test"] == "success"


async def test_max_parallel_holds_the_rest_and_releases_them_in_order(api):
    await put(api, "mp", """
jobs:
  build:
    strategy:
      max-parallel: 2
      matrix:
        n: [1, 2, 3, 4]
    run: ./build
""")
    run = (await start(api, "mp"))["run_id"]
    assert await statuses(api, run) == {"build": "running", "build-1": "queued", "build-2": "queued",
                                        "build-3": "queued", "build-4": "queued"}
    held = (await api.get(f"/api/runs/{run}/jobs/build-3")).json()
    assert held["blocked_by"]["max_parallel"] == 2
    a, b = await claim(api), await claim(api)
    assert [a["job"]["job_id"], b["job"]["job_id"]] == ["build-1", "build-2"]
    assert await claim(api) is None
    await finish(api, b)
    c = await claim(api)
    assert c["job"]["job_id"] == "build-3" and await claim(api) is None


async def test_max_parallel_one_never_runs_two_at_once(api):
    """Many claimers at once, each finishing what it gets: from the
    combinations' own attempt records, no two ever overlapped."""
    await put(api, "serial", """
jobs:
  step:
    strategy:
      max-parallel: 1
      matrix:
        n: [1, 2, 3, 4, 5, 6]
    run: ./step
""")
    run = (await start(api, "serial"))["run_id"]
    done = 0

    async def claimer(i: int) -> None:
        nonlocal done
        while done < 6:
            got = await claim(api, f"w{i}")
            if got is None:
                await asyncio.sleep(0.01)
                continue
            await asyncio.sleep(0)  # let the other claimers try while this one holds it
            await finish(api, got)
            done += 1

    await asyncio.wait_for(asyncio.gather(*(claimer(i) for i in range(8))), 60)
    view = await run_view(api, run)
    assert view["status"] == "success"
    spans = sorted((a["started_at"], a["finished_at"]) for j in view["jobs"] if j["matrix_of"]
                   for a in j["attempts"])
    assert len(spans) == 6
    for (_, end), (start_next, _) in zip(spans, spans[1:]):
        assert start_next >= end, spans


DYNAMIC = """
jobs:
  plan:
    run: ./plan
  build:
    needs: plan
    runs-on: ${{ matrix.os }}
    strategy:
      matrix: ${{ fromJSON(needs.plan.outputs.targets) }}
    run: ./build
"""


async def test_a_dynamic_matrix_expands_from_a_planning_jobs_output(api):
    await put(api, "dyn", DYNAMIC)
    run = (await start(api, "dyn"))["run_id"]
    targets = '{"os": ["linux"], "arch": ["amd64", "arm64"], "include": [{"os": "mac", "arch": "arm64"}]}'
    await finish(api, await claim_job(api, "plan"), outputs={"targets": targets})
    jobs = await jobs_of(api, run)
    assert jobs["build"]["combinations"] == ["build-linux-amd64", "build-linux-arm64", "build-mac-arm64"]
    assert jobs["build-mac-arm64"]["required_labels"] == ["mac"]
    got = await claim(api, "m", ["mac"])
    assert got["job"]["contexts"]["matrix"] == {"os": "mac", "arch": "arm64"}


async def test_a_bad_dynamic_matrix_fails_the_matrix_job_with_the_reason(api):
    await put(api, "dyn", DYNAMIC)
    for targets, reason in [
        ("not json", "cannot evaluate the job's expressions: fromJSON"),
        ('{"os": []}', "matrix key 'os' has no values"),
        ('{"n": ' + str(list(range(300))) + '}', "the matrix makes 300 combinations; at most 256"),
        ('["linux"]', "a matrix must be a mapping"),
    ]:
        run = (await start(api, "dyn"))["run_id"]
        await finish(api, await claim_job(api, "plan"), outputs={"targets": targets})
        build = (await jobs_of(api, run))["build"]
        assert build["status"] == "failure" and build["error"].startswith(reason), (targets, build["error"])
        assert (await run_view(api, run))["status"] == "failure"


async def test_a_failed_matrix_is_retried_through_its_matrix_job(api):
    await put(api, "retry", """
jobs:
  t:
    strategy:
      fail-fast: false
      matrix:
        n: [1, 2]
    run: x
  after:
    needs: t
    run: x
""")
    run = (await start(api, "retry"))["run_id"]
    await finish(api, await claim_job(api, "t-1"))
    await finish(api, await claim_job(api, "t-2"), ok=False)
    assert await statuses(api, run) == {"t": "failure", "t-1": "success", "t-2": "failure", "after": "skipped"}
    assert (await api.post(f"/api/runs/{run}/jobs/t-2/retry")).status_code == 202
    assert await statuses(api, run) == {"t": "running", "t-1": "success", "t-2": "queued", "after": "queued"}
    got = await claim_job(api, "t-2")
    assert got["job"]["attempt"] == 1
    await finish(api, got)
    await finish(api, await claim_job(api, "after"))
    assert (await run_view(api, run))["status"] == "success"


async def test_cancelling_a_matrix_job_cancels_its_combinations(api):
    await put(api, "cancel", """
jobs:
  t:
    strategy:
      max-parallel: 1
      matrix:
        n: [1, 2]
    run: x
""")
    run = (await start(api, "cancel"))["run_id"]
    assert (await api.post(f"/api/runs/{run}/jobs/t/cancel")).status_code == 202
    assert await statuses(api, run) == {"t": "cancelled", "t-1": "cancelled", "t-2": "cancelled"}
    assert (await run_view(api, run))["status"] == "cancelled"
