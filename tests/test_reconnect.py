"""worker/reconnect.py and the log tail's reconnects (issue 14, item 13), on
fake transports: what is retried, what is said, and that a tail resumes
where it stopped. tests/test_cli_outage.py does it with real processes."""

from __future__ import annotations

import httpx
import pytest

from server.models import JobOut
from tests.test_worker_client import JOB_JSON, chunk_json, client_for
from worker.client.api import Client
from worker.client.errors import ApiError, Unreachable
from worker.client.reconnect import Reconnect, StillDown

QUICK = {"first_delay": 0.001, "max_delay": 0.002}  # a test's outages are retried at once


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def failing(*failures: Exception, clock: Clock | None = None):
    """A call that raises each of `failures` in turn (each 2 s later on
    `clock`), then answers "ok"."""
    left = list(failures)
    calls = []

    async def call() -> str:
        calls.append(1)
        if left:
            if clock is not None and len(calls) > 1:
                clock.now += 2
            raise left.pop(0)
        if clock is not None:
            clock.now += 2
        return "ok"

    call.calls = calls  # type: ignore[attr-defined]
    return call


DOWN = Unreachable("http://rota.test", httpx.ConnectError("connection refused"))
NO_REDIS = ApiError(503, "store_unavailable", "the Redis store is not answering; retry shortly")


async def test_an_outage_is_waited_out_and_said_once_each_way():
    said, clock = [], Clock()
    net = Reconnect(said.append, clock, **QUICK)
    call = failing(DOWN, NO_REDIS, ApiError(502, "http_502", "bad gateway"), DOWN, clock=clock)
    assert await net.call(call) == "ok"
    assert len(call.calls) == 5
    assert said == ["server unreachable; reconnecting (cannot reach rota server at http://rota.test:"
                    " connection refused)", "reconnected after 8s"]
    assert await net.call(failing()) == "ok" and len(said) == 2  # all well: nothing more to say


async def test_an_answer_that_is_no_outage_is_not_retried():
    net = Reconnect([].append, **QUICK)
    for exc in (ApiError(500, "internal", "internal server error"), ApiError(404, "run_not_found", "no run"),
                ApiError(401, "unauthenticated", "unknown token")):
        call = failing(exc)
        with pytest.raises(ApiError):
            await net.call(call)
        assert len(call.calls) == 1


async def test_past_its_deadline_a_call_gives_up_with_still_down():
    clock = Clock()
    net = Reconnect([].append, clock, **QUICK)

    async def down() -> str:
        clock.now += 1
        raise DOWN

    with pytest.raises(StillDown) as info:
        await net.call(down, until=5.0)
    assert info.value.cause is DOWN and clock.now == 5.0


class Outages:
    def __init__(self) -> None:
        self.said: list[str] = []

    def lost(self, cause: BaseException) -> None:
        self.said.append(f"lost: {cause}")

    def back(self) -> None:
        self.said.append("back")

    def backoff(self, failures: int) -> float:
        return 0.0


async def test_a_tail_waits_for_the_server_and_resumes_after_the_last_line():
    seen = []
    answers = [
        f"retry: 1000\n\nid: 1-0\nevent: log\ndata: {chunk_json(0, 'before')}\n\n",  # then kill -9
        httpx.ConnectError("connection refused"),
        httpx.ConnectError("connection refused"),
        503,  # the server is back, its Redis not yet
        f"id: 2-0\nevent: log\ndata: {chunk_json(1, 'after')}\n\nid: 2-0\nevent: end\ndata: {JOB_JSON}\n\n",
    ]

    async def handler(request):
        seen.append(request.headers.get("last-event-id"))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if answer == 503:
            return httpx.Response(503, json={"error": {"code": "store_unavailable", "message": "retry shortly",
                                                       "details": None}})
        return httpx.Response(200, text=answer, headers={"content-type": "text/event-stream"})

    outages = Outages()
    async with client_for(handler) as client:
        items = [item async for item in client._follow("/api/runs/r/jobs/j/logs/stream", outages)]
    assert [i.data for i in items if not isinstance(i, JobOut)] == ["before", "after"]
    assert isinstance(items[-1], JobOut)
    assert seen == [None, "1-0", "1-0", "1-0", "1-0"]
    # connected, dropped (silently resumed), refused twice, a 503, then back
    assert [s.split(":")[0] for s in outages.said] == ["back", "lost", "lost", "lost", "back"]


async def test_without_outages_a_tail_still_gives_up_and_a_refusal_is_at_once():
    async def down(request):
        raise httpx.ConnectError("connection refused")

    async with Client("http://rota.test/", transport=httpx.MockTransport(down), stream_reconnects=1) as client:
        with pytest.raises(Unreachable):
            [item async for item in client.follow_logs("wf", "j")]

    async def gone(request):
        return httpx.Response(404, json={"error": {"code": "run_not_found", "message": "no run", "details": None}})

    async with client_for(gone) as client:
        with pytest.raises(ApiError, match="run_not_found"):
            [item async for item in client._follow("/x", Outages())]


async def test_a_wait_whose_timeout_passes_while_the_server_is_out_says_what_to_check():
    import io

    from worker.cli import watch as cli_watch

    clock = Clock()

    async def down(request):
        clock.now += 30
        raise httpx.ConnectError("connection refused")

    out = io.StringIO()
    async with client_for(down) as client:
        code = await cli_watch.watch(client, "RUN", follow=True, out=out, timeout=90, clock=clock,
                                     pace=cli_watch.Pace(reconnect_first_delay=0.001, reconnect_max_delay=0.002))
    said = out.getvalue().splitlines()
    assert code == 1
    assert [line.split("] ", 1)[1].split(" (")[0] for line in said] == [
        "server unreachable; reconnecting", "timed out after 90s: cancelling run RUN",
        "the server is still out"]
    assert said[-1].endswith("check it with: rota status RUN (cancel it with: rota cancel RUN)")
