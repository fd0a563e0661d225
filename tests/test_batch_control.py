"""The batch protocol meets run control as the single claim does, on both
stores: a batch claim, a complete with `next` and a batch of results with
`next` never lease past a concurrency group's limit, a paused run's jobs or
a paused label's."""

from __future__ import annotations

from tests.test_concurrency import doc, group, run_of
from tests.test_pause import pause, resume
from tests.test_runs import put, start


async def claims(api, max_jobs: int, labels=()) -> list[dict]:
    resp = await api.post("/api/jobs/claims", json={"worker_id": "w", "max_jobs": max_jobs, "labels": list(labels)})
    assert resp.status_code == 200, resp.text
    return resp.json()["claims"]


def runs_of(leased: list[dict]) -> list[str]:
    return [c["job"]["run_id"] for c in leased]


async def test_a_batch_claim_takes_no_more_than_a_groups_limit(api):
    await put(api, "load", doc("{group: load, limit: 3, queue: max}"))
    runs = [(await start(api, "load"))["run_id"] for _ in range(7)]
    first = await claims(api, 10)
    assert runs_of(first) == runs[:3], "three places, three leases, in the order the runs came"
    assert len((await group(api, "load"))["running"]) == 3
    # one finished with `next`: its place goes to the fourth run, in the same call
    lid = first[0]["lease"]["lease_id"]
    resp = await api.post(f"/api/jobs/{lid}/complete", json={"next": {"worker_id": "w", "max_jobs": 10}})
    assert resp.status_code == 200, resp.text
    assert runs_of(resp.json()["next"]) == [runs[3]]
    # two more finished in one batch of results: two places, two leases
    body = {"results": [{"lease_id": c["lease"]["lease_id"], "kind": "complete"} for c in first[1:]],
            "next": {"worker_id": "w", "max_jobs": 10}}
    out = (await api.post("/api/jobs/results", json=body)).json()
    assert [r["outcome"] for r in out["results"]] == ["success", "success"]
    assert runs_of(out["next"]) == runs[4:6]
    assert len((await group(api, "load"))["running"]) == 3
    assert await claims(api, 10) == []


async def test_a_batch_claim_leaves_a_paused_run_and_a_paused_labels_jobs(api):
    await put(api, "mixed", "jobs:\n  train: {run: x, labels: [gpu]}\n  any: {run: x}\n  more: {run: x}\n")
    held = (await start(api, "mixed"))["run_id"]
    await pause(api, f"runs/{held}")
    other = (await start(api, "mixed"))["run_id"]
    await pause(api, "labels/gpu")
    leased = await claims(api, 10, ["gpu"])
    assert sorted((c["job"]["run_id"], c["job"]["job_id"]) for c in leased) == [(other, "any"), (other, "more")]
    await resume(api, "labels/gpu")
    resp = await api.post(f"/api/jobs/{leased[0]['lease']['lease_id']}/complete",
                          json={"next": {"worker_id": "w", "max_jobs": 10, "labels": ["gpu"]}})
    assert [(c["job"]["run_id"], c["job"]["job_id"]) for c in resp.json()["next"]] == [(other, "train")]
    await resume(api, f"runs/{held}")
    assert sorted(runs_of(await claims(api, 10, ["gpu"]))) == [held] * 3
    assert (await run_of(api, held))["status"] == "running"
