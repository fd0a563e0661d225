"""Issue 14, items 3 and 4, in process on both stores: a job's log is bounded
in bytes per attempt (LOG_MAX_BYTES), per chunk (LOG_MAX_CHUNK_BYTES) and
per request (chunks); a result's `result_data` like outputs
(MAX_OUTPUT_BYTES); reading the history is paged by bytes with a cursor.

The process-level replays of the audit (Redis memory, server RSS, tails
that never read) are in test_log_limits_processes.py."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging

import httpx
import pytest

from server import limits
from tests.test_api import assert_error
from tests.test_runs import claim, finish, put, start

ONE = """
name: one
jobs:
  build:
    run: make
    retries: 1
"""
BUDGET = 20_000
MARKER = f"[rota: job log exceeded LOG_MAX_BYTES ({BUDGET} bytes); further output dropped]\n"


@pytest.fixture
async def small_api(redis, settings):
    """A server whose job logs may hold BUDGET bytes per attempt."""
    from server.app import create_app

    app = create_app(dataclasses.replace(settings, log_max_bytes=BUDGET, max_output_bytes=4096), redis=redis)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
            client.store = app.state.store  # type: ignore[attr-defined]
            yield client


async def running(api) -> tuple[dict, str]:
    await put(api, "one", ONE)
    run = (await start(api, "one"))["run_id"]
    claimed = await claim(api)
    assert claimed is not None
    return claimed, run


def chunk(claimed: dict, seq: int, data: str) -> dict:
    return {"workflow_id": claimed["job"]["workflow_id"], "job_id": claimed["job"]["job_id"], "sequence": seq,
            "data": data, "timestamp_ms": 1, "stream": "stdout"}


async def push(api, claimed: dict, chunks: list[dict]) -> httpx.Response:
    return await api.post(f"/api/jobs/{claimed['lease']['lease_id']}/logs", json={"chunks": chunks})


async def history(api, run: str, job: str = "build", **params) -> list[dict]:
    """Every chunk, following X-Next-Cursor page by page."""
    out: list[dict] = []
    while True:
        resp = await api.get(f"/api/runs/{run}/jobs/{job}/logs", params=params)
        assert resp.status_code == 200, resp.text
        out += resp.json()
        if "x-next-cursor" not in resp.headers:
            return out
        params = {**params, "after": resp.headers["x-next-cursor"]}


async def stored_sizes(api, run: str, job: str = "build") -> list[int]:
    """The bytes each log entry holds in Redis, as the budget counts them."""
    store = api.store
    entries = await store.redis.xrange(store.key("logs", run, job))
    return [len(fields["c"].encode()) for _, fields in entries]


# ---- writing: per chunk, per request, per attempt --------------------------------------


async def test_a_chunk_over_LOG_MAX_CHUNK_BYTES_is_422_naming_it_and_nothing_is_kept(api):
    claimed, run = await running(api)
    too_big = "x" * (256 * 1024)
    err = assert_error(await push(api, claimed, [chunk(claimed, 0, "fine\n"), chunk(claimed, 1, too_big)]),
                       422, "too_large")
    assert err["details"]["field"] == "chunks[1]" and err["details"]["limit"] == 256 * 1024
    assert await history(api, run) == []


async def test_more_chunks_than_a_request_may_carry_are_422_and_nothing_is_kept(api):
    claimed, run = await running(api)
    many = [chunk(claimed, i, "x") for i in range(limits.MAX_LOG_CHUNKS_PER_REQUEST + 1)]
    err = assert_error(await push(api, claimed, many), 422, "invalid_body")
    assert "chunks" in err["details"]["field"]
    assert await history(api, run) == []
    assert (await push(api, claimed, many[:limits.MAX_LOG_CHUNKS_PER_REQUEST])).status_code == 200


async def test_the_request_that_fills_the_budget_keeps_what_fits_and_the_log_says_so(small_api):
    api = small_api
    claimed, run = await running(api)
    line = "x" * 2999 + "\n"
    resp = await push(api, claimed, [chunk(claimed, i, line) for i in range(10)])
    assert resp.status_code == 200, resp.text
    kept = resp.json()["accepted"]
    assert 0 < kept < 10 and resp.json() == {"accepted": kept, "duplicates": 0, "dropped": 10 - kept}
    sizes = await stored_sizes(api, run)
    assert sum(sizes[:kept]) <= BUDGET < sum(sizes[:kept]) + sizes[0]  # as much as fits, no more
    logged = await history(api, run)
    assert [c["data"] for c in logged] == [line] * kept + [MARKER]
    assert logged[-1]["stream"] == "stderr" and logged[-1]["attempt"] == 0

    # full: later output is 413 and changes nothing (no second marker); the job runs on
    err = assert_error(await push(api, claimed, [chunk(claimed, 10, "more\n")]), 413, "log_limit_exceeded")
    assert err["details"] == {"limit": BUDGET}
    # a resend of what was kept is still a plain duplicate
    again = await push(api, claimed, [chunk(claimed, 0, line)])
    assert again.status_code == 200 and again.json() == {"accepted": 0, "duplicates": 1}
    assert [c["data"] for c in await history(api, run)] == [line] * kept + [MARKER]
    assert (await api.post(f"/api/jobs/{claimed['lease']['lease_id']}/heartbeat")).status_code == 200
    await finish(api, claimed)


async def test_a_log_filled_exactly_takes_nothing_more_and_then_says_so(small_api):
    api = small_api
    claimed, run = await running(api)
    probe = await push(api, claimed, [chunk(claimed, 0, "p")])
    size = (await stored_sizes(api, run))[0]
    # fill the rest exactly: one chunk whose stored size is what is left
    rest = BUDGET - size
    filler = "f" * (rest - (size - 1))
    resp = await push(api, claimed, [chunk(claimed, 1, filler)])
    assert probe.status_code == resp.status_code == 200 and "dropped" not in resp.json()
    assert sum(await stored_sizes(api, run)) == BUDGET
    resp = await push(api, claimed, [chunk(claimed, 2, "one byte too many")])
    assert resp.status_code == 200 and resp.json()["dropped"] == 1  # this one fills it: the marker
    assert (await history(api, run))[-1]["data"] == "\n" + MARKER  # (the filler ended mid-line)
    assert_error(await push(api, claimed, [chunk(claimed, 3, "x")]), 413, "log_limit_exceeded")


async def test_the_marker_starts_on_a_line_of_its_own(small_api):
    api = small_api
    claimed, run = await running(api)
    assert (await push(api, claimed, [chunk(claimed, 0, "no newline yet")])).status_code == 200
    resp = await push(api, claimed, [chunk(claimed, 1, "y" * 30_000)])
    assert resp.json() == {"accepted": 0, "duplicates": 0, "dropped": 1}
    assert [c["data"] for c in await history(api, run)] == ["no newline yet", "\n" + MARKER]


async def test_each_attempt_has_a_budget_of_its_own(small_api):
    api = small_api
    claimed, run = await running(api)
    assert (await push(api, claimed, [chunk(claimed, i, "z" * 3000) for i in range(10)])).json()["dropped"] > 0
    await finish(api, claimed, ok=False, retryable=True)
    second = await claim(api)
    assert second["job"]["attempt"] == 1
    assert (await push(api, second, [chunk(second, 0, "second try\n")])).status_code == 200
    assert [c["data"] for c in await history(api, run, attempt=1)] == ["second try\n"]


async def test_the_jobs_own_log_entries_share_the_budget(small_api):
    api = small_api
    claimed, run = await running(api)
    entry = {"level": "info", "message": "e" * 3000}
    answers = [await api.post(f"/api/jobs/{claimed['lease']['lease_id']}/log", json=entry) for _ in range(10)]
    kept = [a for a in answers if a.status_code == 200 and a.json() == {"ok": True, "count": 1}]
    filling = answers[len(kept)]
    assert kept and filling.status_code == 200 and filling.json() == {"ok": True, "count": 0, "dropped": 1}
    assert all(a.status_code == 413 and a.json()["error"]["code"] == "log_limit_exceeded"
               for a in answers[len(kept) + 1:])
    # output pushed afterwards finds the log full too
    assert_error(await push(api, claimed, [chunk(claimed, 0, "out\n")]), 413, "log_limit_exceeded")
    logged = await history(api, run)
    assert [c["data"] for c in logged].count(MARKER) == 1 and logged[-1]["data"] == MARKER
    assert sum((await stored_sizes(api, run))[:-1]) <= BUDGET


async def test_concurrent_writers_never_overspend_the_budget(small_api):
    """Many requests of one attempt at once (its run token and its worker):
    the budget is checked and spent in the same script as the append."""
    api = small_api
    claimed, run = await running(api)
    lid = claimed["lease"]["lease_id"]

    async def entry(i: int) -> httpx.Response:
        return await api.post(f"/api/jobs/{lid}/log", json={"message": f"{i:03d}" + "e" * 997})

    async def output(i: int) -> httpx.Response:
        return await push(api, claimed, [chunk(claimed, i, "o" * 1000)])

    answers = await asyncio.gather(*(entry(i) for i in range(30)), *(output(i) for i in range(30)))
    assert {a.status_code for a in answers} <= {200, 413}
    # the entries alone are more than the budget: one answer filled it (200,
    # `dropped`); those after it with anything new are 413 (outputs may all
    # be resends by then, the sequences arriving in any order)
    assert [a.status_code == 200 and a.json().get("dropped", 0) > 0 for a in answers].count(True) == 1
    sizes = await stored_sizes(api, run)
    logged = await history(api, run)
    assert [c["data"] for c in logged].count(MARKER) == 1 and logged[-1]["data"] == MARKER
    assert sum(sizes[:-1]) <= BUDGET


# ---- result_data is bounded like outputs -----------------------------------------------


@pytest.mark.parametrize("field", ["result_data", "result"])
async def test_a_result_larger_than_MAX_OUTPUT_BYTES_is_422_and_changes_nothing(small_api, field):
    api = small_api
    claimed, run = await running(api)
    lid = claimed["lease"]["lease_id"]
    err = assert_error(await api.post(f"/api/jobs/{lid}/complete", json={field: {"blob": "b" * 5000}}),
                       422, "result_too_large")
    assert err["details"] == {"field": field, "limit": 4096, "size": len(json.dumps({"blob": "b" * 5000},
                                                                                    separators=(",", ":")))}
    assert (await api.get(f"/api/runs/{run}/jobs/build")).json()["status"] == "running"
    assert (await api.post(f"/api/jobs/{lid}/complete", json={field: {"rows": 12}})).status_code == 200


async def test_a_failure_text_larger_than_MAX_OUTPUT_BYTES_is_422_and_changes_nothing(small_api):
    api = small_api
    claimed, run = await running(api)
    lid = claimed["lease"]["lease_id"]
    err = assert_error(await api.post(f"/api/jobs/{lid}/fail", json={"error": "boom", "error_stack": "s" * 5000}),
                       422, "result_too_large")
    assert err["details"]["field"] == "error_stack"
    assert (await api.get(f"/api/runs/{run}/jobs/build")).json()["status"] == "running"
    assert (await api.post(f"/api/jobs/{lid}/fail", json={"error": "boom"})).status_code == 200


# ---- reading: pages bounded by bytes ---------------------------------------------------


async def big_log(api, chunks: int = 40, size: int = 60_000) -> tuple[dict, str, list[str]]:
    """A job whose log is `chunks` chunks of `size` bytes (2.4 MB by default)."""
    claimed, run = await running(api)
    texts = [f"{i:05d}" + "l" * (size - 6) + "\n" for i in range(chunks)]
    for start_at in range(0, chunks, 10):
        part = [chunk(claimed, i, texts[i]) for i in range(start_at, min(start_at + 10, chunks))]
        assert (await push(api, claimed, part)).status_code == 200
    return claimed, run, texts


async def test_history_is_paged_by_bytes_with_the_cursor_in_a_header(api):
    _, run, texts = await big_log(api)
    first = await api.get(f"/api/runs/{run}/jobs/build/logs")
    assert first.status_code == 200 and isinstance(first.json(), list)
    assert 0 < len(first.json()) < len(texts)
    assert len(first.content) <= limits.LOG_PAGE_BYTES + 4096  # the chunks plus the list's punctuation
    assert "x-next-cursor" in first.headers
    pages = 0
    params: dict = {}
    seen: list[str] = []
    while True:
        resp = await api.get(f"/api/runs/{run}/jobs/build/logs", params=params)
        assert len(resp.content) <= limits.LOG_PAGE_BYTES + 4096
        seen += [c["data"] for c in resp.json()]
        pages += 1
        if "x-next-cursor" not in resp.headers:
            break
        params = {"after": resp.headers["x-next-cursor"]}
    assert seen == texts and pages >= 3


async def test_the_seed_path_pages_the_same_way(api):
    claimed, run, texts = await big_log(api)
    wf = claimed["job"]["workflow_id"]
    first = await api.get(f"/api/workflows/{wf}/jobs/build/logs")
    assert isinstance(first.json(), list) and first.json()[0]["data"] == texts[0]
    rest = await api.get(f"/api/workflows/{wf}/jobs/build/logs", params={"after": first.headers["x-next-cursor"]})
    assert rest.json()[0]["data"] == texts[len(first.json())]


async def test_limit_caps_a_page_by_chunks(api):
    _, run, texts = await big_log(api, chunks=7, size=100)
    resp = await api.get(f"/api/runs/{run}/jobs/build/logs", params={"limit": 3})
    assert [c["data"] for c in resp.json()] == texts[:3] and "x-next-cursor" in resp.headers
    assert [c["data"] for c in await history(api, run, limit=3)] == texts
    last = await api.get(f"/api/runs/{run}/jobs/build/logs", params={"limit": 7})
    assert len(last.json()) == 7 and "x-next-cursor" not in last.headers


async def test_tail_reads_the_last_bytes_then_pages_backwards(api):
    _, run, texts = await big_log(api, chunks=10, size=1000)
    resp = await api.get(f"/api/runs/{run}/jobs/build/logs", params={"tail": 3500})
    tail = [c["data"] for c in resp.json()]
    assert tail == texts[-len(tail):] and 1 <= len(tail) <= 3
    assert "x-next-cursor" not in resp.headers
    seen = tail
    while "x-prev-cursor" in resp.headers:
        resp = await api.get(f"/api/runs/{run}/jobs/build/logs",
                             params={"before": resp.headers["x-prev-cursor"], "tail": 3500})
        seen = [c["data"] for c in resp.json()] + seen
    assert seen == texts
    # a tail larger than the whole log is the whole log
    whole = await api.get(f"/api/runs/{run}/jobs/build/logs", params={"tail": 100_000})
    assert [c["data"] for c in whole.json()] == texts and "x-prev-cursor" not in whole.headers


async def test_a_page_always_holds_at_least_one_chunk(api):
    _, run, texts = await big_log(api, chunks=3, size=5000)
    resp = await api.get(f"/api/runs/{run}/jobs/build/logs", params={"tail": 10})
    assert [c["data"] for c in resp.json()] == texts[-1:]


@pytest.mark.parametrize("params,status,field", [
    ({"after": "1-0", "before": "2-0"}, 422, "before"),
    ({"after": "1-0", "tail": "10"}, 422, "tail"),
    ({"tail": "0"}, 422, "tail"),
    ({"limit": "0"}, 422, "limit"),
    ({"before": "yesterday"}, 400, "before"),
    ({"after": "x"}, 400, "after"),
])
async def test_bad_paging_parameters_name_the_field(api, params, status, field):
    _, run = await running(api)
    err = assert_error(await api.get(f"/api/runs/{run}/jobs/build/logs", params=params), status)
    assert err["details"]["field"] == field


async def test_filters_still_apply_across_pages(api):
    claimed, run = await running(api)
    big = "a" * 200_000 + "\n"
    for i in range(8):
        assert (await push(api, claimed, [chunk(claimed, i, big)])).status_code == 200
    await finish(api, claimed, ok=False, retryable=True)
    second = await claim(api)
    assert (await push(api, second, [chunk(second, 0, "retry\n")])).status_code == 200
    assert [c["data"] for c in await history(api, run, attempt=1)] == ["retry\n"]
    assert len(await history(api, run, attempt=0)) == 8


async def test_the_stream_sends_a_long_log_whole_and_in_order(api):
    claimed, run, texts = await big_log(api)
    await finish(api, claimed)
    body = (await api.get(f"/api/runs/{run}/jobs/build/logs/stream")).text
    sent = [json.loads(line[6:])["data"] for line in body.split("\n") if line.startswith("data: ")
            and '"sequence"' in line and '"status"' not in line]
    assert sent == texts and "event: end" in body


async def test_a_full_log_is_said_once_however_often_it_is_pushed_to(small_api, caplog):
    caplog.set_level(logging.INFO, logger="rota")
    api = small_api
    claimed, run = await running(api)
    await push(api, claimed, [chunk(claimed, i, "w" * 3000) for i in range(10)])
    for i in range(10, 15):  # a worker that does not stop (the seed's)
        assert (await push(api, claimed, [chunk(claimed, i, "more")])).status_code == 413
    said = [r.getMessage() for r in caplog.records if r.name == "rota.events"]
    assert said.count(f"job {run}/build attempt 0: log reached LOG_MAX_BYTES ({BUDGET} bytes);"
                      " further output dropped") == 1
    assert [r.getMessage() for r in caplog.records if r.name == "rota.access"] == []
