"""GET /api/queues, on both stores: the ready jobs per label set, how long
the oldest has waited, and which live workers can serve each queue."""

from __future__ import annotations

from server import limits
from tests.test_api import assert_error
from tests.test_auth import ADMIN, bearer, make_token


def doc(*jobs: dict) -> dict:
    return {"name": "q", "jobs": list(jobs)}


async def start(api, *jobs: dict, headers=None) -> str:
    resp = await api.post("/api/workflows", params={"run": "true"}, json=doc(*jobs), headers=headers or {})
    assert resp.status_code == 201, resp.text
    return resp.json()["latest_run_id"]


async def register(api, worker: str, labels: list[str], **extra) -> None:
    resp = await api.post("/api/workers/register", json={"worker_id": worker, "labels": labels, **extra})
    assert resp.status_code == 200, resp.text


async def queues(api, headers=None) -> dict:
    resp = await api.get("/api/queues", headers=headers or {})
    assert resp.status_code == 200, resp.text
    return resp.json()


def by_labels(page: dict) -> dict[tuple[str, ...], dict]:
    return {tuple(q["labels"]): q for q in page["queues"]}


async def test_no_queue_when_nothing_is_ready(api):
    page = await queues(api)
    assert page["queues"] == [] and page["truncated"] is False and page["now_ms"] > 0


async def test_ready_jobs_are_counted_per_label_set(api):
    await start(api, {"id": "a", "command": "true", "required_labels": ["linux"]},
                {"id": "b", "command": "true", "required_labels": ["linux"]},
                {"id": "c", "command": "true", "required_labels": ["gpu", "linux"]},
                {"id": "d", "command": "true"},
                {"id": "e", "command": "true", "required_labels": ["linux"], "depends_on": ["a"]})  # not ready yet
    page = by_labels(await queues(api))
    assert {k: q["ready"] for k, q in page.items()} == {("linux",): 2, ("gpu", "linux"): 1, (): 1}
    # the fullest first
    assert (await queues(api))["queues"][0]["labels"] == ["linux"]


async def test_the_oldest_ready_job_is_named_with_when_it_was_enqueued(api):
    first = await start(api, {"id": "a", "command": "true", "required_labels": ["x"]})
    await start(api, {"id": "a", "command": "true", "required_labels": ["x"], "priority": 50})  # runs first
    q = by_labels(await queues(api))[("x",)]
    assert q["ready"] == 2
    # the oldest by enqueue time, even behind a job of higher priority
    assert q["oldest"]["run_id"] == first and q["oldest"]["job_id"] == "a"
    assert 0 < q["oldest"]["enqueued_at_ms"] <= (await queues(api))["now_ms"]


async def test_live_workers_that_can_serve_a_queue_are_listed(api):
    await start(api, {"id": "a", "command": "true", "required_labels": ["linux"]},
                {"id": "b", "command": "true", "required_labels": ["gpu"]},
                {"id": "c", "command": "true"})
    await register(api, "w-linux", ["linux", "docker"], concurrency=4)
    await register(api, "w-excl", ["linux"], exclusive=True)
    await register(api, "w-bare", [])
    page = by_labels(await queues(api))
    assert sorted(page[("linux",)]["workers"]) == ["w-excl", "w-linux"]
    assert page[("linux",)]["live_workers"] == 2 and page[("linux",)]["free_slots"] >= 4
    assert page[("gpu",)]["workers"] == [] and page[("gpu",)]["live_workers"] == 0
    # an exclusive worker takes no job without labels
    assert sorted(page[()]["workers"]) == ["w-bare", "w-linux"]


async def test_a_claimed_job_leaves_its_queue(api):
    await start(api, {"id": "a", "command": "true", "required_labels": ["solo"]})
    assert by_labels(await queues(api))[("solo",)]["ready"] == 1
    claim = await api.post("/api/jobs/claim", json={"worker_id": "w", "labels": ["solo"]})
    assert claim.status_code == 200 and claim.json()
    assert ("solo",) not in by_labels(await queues(api))


async def test_the_listing_is_bounded(api, monkeypatch):
    from server.store import queues as queues_module

    monkeypatch.setattr(queues_module, "MAX_QUEUES", 3)
    await start(api, *({"id": f"j{i}", "command": "true", "required_labels": [f"l{i}"]} for i in range(5)))
    page = await queues(api)
    assert len(page["queues"]) == 3 and page["truncated"] is True


async def test_queues_need_the_read_scope(auth_api):
    worker = await make_token(auth_api, "worker")
    assert_error(await auth_api.get("/api/queues", headers=bearer(worker["token"])), 403, "forbidden")
    reader = await make_token(auth_api, "read")
    await start(auth_api, {"id": "a", "command": "true", "required_labels": ["r"]}, headers=ADMIN)
    page = await queues(auth_api, bearer(reader["token"]))
    assert by_labels(page)[("r",)]["ready"] == 1


def test_the_bound_is_stated():
    from server.store import queues as queues_module

    assert queues_module.MAX_QUEUES == limits.MAX_QUEUES_LISTED
