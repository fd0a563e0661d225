"""LogShipper: batching, sequence numbers, resends without duplicates, 409, backpressure."""

import asyncio
import json
import logging

import httpx

from server import limits
from server.models import Lease
from worker.client.api import Client
from worker.client.errors import ApiError, Unreachable
from worker.daemon.logship import LogShipper, Outage

LEASE = Lease(lease_id="L1", job_id="build", workflow_id="wf", worker_id="w", ttl_secs=30, granted_at_ms=0)


class LogsEndpoint:
    """Records every push; answers from `script` first (a status, a (status,
    error code) pair, or None for no answer)."""

    def __init__(self, script=(), budget: int | None = None):
        self.script = list(script)
        self.budget = budget  # characters of data, like the server's LOG_MAX_BYTES
        self.full = False
        self.filled_by = 0  # how many pushes there were when one filled the log
        self.pushes: list[list[dict]] = []
        self.stored: list[dict] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/jobs/L1/logs"
        chunks = json.loads(request.content)["chunks"]
        self.pushes.append(chunks)
        if self.script:
            status = self.script.pop(0)
            if status is None:
                raise httpx.ConnectError("refused", request=request)
            status, code = status if isinstance(status, tuple) else (status, "x")
            return httpx.Response(status, json={"error": {"code": code, "message": "no",
                                                          "details": {"limit": 65536, "accepted": 0}}})
        high = self.stored[-1]["sequence"] if self.stored else -1
        fresh = [c for c in chunks if c["sequence"] > high]
        if self.full and fresh:
            return httpx.Response(413, json={"error": {"code": "log_limit_exceeded", "message": "full",
                                                       "details": {"limit": self.budget}}})
        kept = fresh
        if self.budget is not None:
            room = self.budget - len(self.text())
            kept = []
            for c in fresh:
                if len(c["data"]) > room:
                    self.full, self.filled_by = True, len(self.pushes)
                    break
                kept.append(c)
                room -= len(c["data"])
        self.stored.extend(kept)
        answer = {"accepted": len(kept), "duplicates": len(chunks) - len(fresh)}
        if len(kept) < len(fresh):
            answer["dropped"] = len(fresh) - len(kept)
        return httpx.Response(200, json=answer)

    def text(self) -> str:
        return "".join(c["data"] for c in self.stored)


def shipper_for(endpoint: LogsEndpoint, **kwargs) -> tuple[LogShipper, Client, list[str]]:
    client = Client("http://rota.test", transport=httpx.MockTransport(endpoint.handle))
    lost: list[str] = []
    return LogShipper(client, LEASE, on_lease_lost=lambda: lost.append("lost"), **kwargs), client, lost


async def test_writes_in_a_burst_share_one_push_with_sequences_from_zero():
    endpoint = LogsEndpoint()
    shipper, client, _ = shipper_for(endpoint, interval=0.05)
    shipper.write("stdout", "a")
    shipper.write("stdout", "b\n")
    shipper.write("stderr", "warn\n")
    shipper.write("stdout", "c\n")
    await shipper.close()
    await client.aclose()
    assert len(endpoint.pushes) == 1
    assert [(c["sequence"], c["stream"], c["data"]) for c in endpoint.stored] == [
        (0, "stdout", "ab\n"),
        (1, "stderr", "warn\n"),
        (2, "stdout", "c\n"),
    ]
    assert all(c["workflow_id"] == "wf" and c["job_id"] == "build" for c in endpoint.stored)
    assert all(c["timestamp_ms"] > 0 for c in endpoint.stored)


async def test_output_is_shipped_while_the_job_runs():
    endpoint = LogsEndpoint()
    shipper, client, _ = shipper_for(endpoint, interval=0.05)
    shipper.write("stdout", "early\n")
    deadline = asyncio.get_running_loop().time() + 5
    while not endpoint.stored:
        assert asyncio.get_running_loop().time() < deadline, "the first batch was never pushed"
        await asyncio.sleep(0.01)
    shipper.write("stdout", "late\n")
    await shipper.close()
    await client.aclose()
    assert [c["sequence"] for c in endpoint.stored] == [0, 1]


async def test_failed_pushes_resend_the_same_batch_and_nothing_is_stored_twice():
    endpoint = LogsEndpoint(script=[None, 503])  # no answer, then a server error
    shipper, client, _ = shipper_for(endpoint, interval=0.01)
    shipper.write("stdout", "one\n")
    await asyncio.sleep(0.1)  # the retries are under way while more output arrives
    shipper.write("stdout", "two\n")
    await shipper.close()
    await client.aclose()
    assert endpoint.pushes[0] == endpoint.pushes[1] == endpoint.pushes[2]  # same sequences, same data
    assert endpoint.text() == "one\ntwo\n"
    sequences = [c["sequence"] for c in endpoint.stored]
    assert sequences == sorted(set(sequences))


async def test_lease_lost_stops_shipping_and_tells_the_job():
    endpoint = LogsEndpoint(script=[409])
    shipper, client, lost = shipper_for(endpoint, interval=0.01)
    shipper.write("stdout", "doomed\n")
    await asyncio.sleep(0.1)
    shipper.write("stdout", "ignored\n")
    await shipper.close()
    await client.aclose()
    assert lost == ["lost"]
    assert len(endpoint.pushes) == 1 and endpoint.stored == []


async def test_the_push_that_fills_the_log_stops_shipping_but_not_the_job(caplog):
    caplog.set_level(logging.WARNING, logger="rota.worker")
    endpoint = LogsEndpoint(budget=5000)
    shipper, client, lost = shipper_for(endpoint, interval=0.01)
    for _ in range(3):
        shipper.write("stdout", "x" * 1000)
    deadline = asyncio.get_running_loop().time() + 10
    while not endpoint.pushes:
        assert asyncio.get_running_loop().time() < deadline, "nothing was pushed"
        await asyncio.sleep(0.01)
    for _ in range(10):
        shipper.write("stderr", "y" * 1000)
    await shipper.close()
    await client.aclose()
    assert endpoint.full and lost == [] and len(endpoint.text()) <= 5000
    assert len(endpoint.pushes) == endpoint.filled_by  # nothing pushed after the one that filled it
    warnings = [r.getMessage() for r in caplog.records if "LOG_MAX_BYTES" in r.getMessage()]
    assert len(warnings) == 1 and "wf/build" in warnings[0], warnings


async def test_a_log_already_full_stops_shipping_but_not_the_job(caplog):
    caplog.set_level(logging.WARNING, logger="rota.worker")
    endpoint = LogsEndpoint(script=[(413, "log_limit_exceeded")])
    shipper, client, lost = shipper_for(endpoint, interval=0.01)
    shipper.write("stdout", "too much\n")
    deadline = asyncio.get_running_loop().time() + 10
    while not endpoint.pushes:
        assert asyncio.get_running_loop().time() < deadline, "nothing was pushed"
        await asyncio.sleep(0.01)
    for _ in range(100):  # the job goes on printing: taken, and dropped
        shipper.write("stderr", "x" * 1000)
    assert not shipper.congested
    await shipper.close()
    await client.aclose()
    assert lost == [] and len(endpoint.pushes) == 1
    warnings = [r.getMessage() for r in caplog.records if "LOG_MAX_BYTES" in r.getMessage()]
    assert len(warnings) == 1 and "wf/build" in warnings[0], warnings


async def test_chunks_are_bounded_in_encoded_bytes_and_pushes_in_chunks():
    endpoint = LogsEndpoint()
    shipper, client, _ = shipper_for(endpoint, interval=0.5, high_water=10**9)
    escaped = "\x1b" * 65536  # 6 bytes each in JSON
    shipper.write("stdout", escaped)
    for i in range(3000):  # alternating streams: one segment each
        shipper.write("stdout" if i % 2 else "stderr", f"{i}\n")
    await shipper.close()
    await client.aclose()
    assert "".join(c["data"] for c in endpoint.stored) == escaped + "".join(f"{i}\n" for i in range(3000))
    assert all(len(json.dumps(c["data"])) <= LogShipper.MAX_CHUNK_BYTES for c in endpoint.stored)
    assert all(len(push) <= LogShipper.MAX_BATCH_CHUNKS for push in endpoint.pushes)
    assert len(endpoint.pushes) >= 3000 // LogShipper.MAX_BATCH_CHUNKS
    assert LogShipper.MAX_BATCH_CHUNKS <= limits.MAX_LOG_CHUNKS_PER_REQUEST


async def test_large_output_is_split_into_bounded_chunks_and_batches():
    endpoint = LogsEndpoint()
    shipper, client, _ = shipper_for(endpoint, interval=0.01, high_water=10**9)
    big = "x" * (LogShipper.MAX_BATCH_BYTES + 10)
    for start in range(0, len(big), 4096):
        shipper.write("stdout", big[start : start + 4096])
    await shipper.close()
    await client.aclose()
    assert endpoint.text() == big
    assert all(len(c["data"]) <= LogShipper.MAX_CHUNK_CHARS for c in endpoint.stored)
    assert len(endpoint.pushes) >= 2


async def test_congestion_while_the_server_is_away():
    endpoint = LogsEndpoint(script=[None, None, None])
    shipper, client, _ = shipper_for(endpoint, interval=0.01, high_water=100)
    shipper.write("stdout", "first\n")
    await asyncio.sleep(0.05)  # the first batch is cut and its push is failing
    shipper.write("stdout", "y" * 100)
    assert shipper.congested
    await asyncio.wait_for(shipper.drained(), 10)  # the server comes back: the backlog is cut
    assert not shipper.congested
    await shipper.close()
    await client.aclose()
    assert endpoint.text() == "first\n" + "y" * 100


async def test_the_end_of_an_outage_is_logged_once(caplog):
    caplog.set_level(logging.INFO, logger="rota.worker")
    endpoint = LogsEndpoint(script=[None, 503, None])
    outage = Outage()
    client = Client("http://rota.test", transport=httpx.MockTransport(endpoint.handle))
    shipper = LogShipper(client, LEASE, on_lease_lost=lambda: None, interval=0.01, outage=outage)
    shipper.write("stdout", "during the outage\n")
    await shipper.close()
    await client.aclose()
    assert endpoint.text() == "during the outage\n" and not outage.ongoing
    back = [r.getMessage() for r in caplog.records if "reachable" in r.getMessage()]
    assert len(back) == 1 and back[0].startswith("server reachable again after "), back


def test_an_answer_of_any_kind_ends_an_outage(caplog):
    caplog.set_level(logging.INFO, logger="rota.worker")
    outage = Outage()
    outage.saw(Unreachable("http://rota.test", OSError("refused")))
    outage.saw(ApiError(503, "unavailable", "redis is down"))
    assert outage.ongoing
    outage.saw(ApiError(409, "lease_lost", "gone"))  # a refusal, but the server answered
    assert not outage.ongoing
    outage.answered()  # nothing more to say
    assert len([r for r in caplog.records if "reachable again" in r.getMessage()]) == 1
