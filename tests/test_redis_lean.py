"""The scripts' own pipelined Redis connection (server/redis_lean.py), on a
real redis-server: the replies redis-py gives, in order under concurrency,
after NOSCRIPT and a Redis restart, with a cancelled caller in the middle;
redis-py's exceptions; and the store's claim race through it."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError, NoPermissionError, ResponseError

from server import redis_lean
from server.redis_lean import LeanRedis
from server.store import Store
from server.store.batch import ClaimArgs, Completed
from tests.helpers import job, submit
from tests.redis_proc import redis_server


def script(source: str) -> tuple[str, str]:
    return hashlib.sha1(source.encode()).hexdigest(), source


ECHO = script("return {KEYS[1], ARGV[1], tonumber(ARGV[2]), {ARGV[3], false}, redis.call('INCR', KEYS[1] .. 'n')}")


@pytest.fixture
async def lean(real_redis_url):
    client = LeanRedis(real_redis_url)
    yield client
    await client.aclose()


async def test_replies_are_redis_pys(lean, real_redis_url):
    plain = Redis.from_url(real_redis_url, decode_responses=True)
    await plain.flushdb()
    ours = await lean.evalsha(*ECHO, ["k"], ["héllo", 42, "x"])
    theirs = await plain.register_script(ECHO[1])(keys=["k"], args=["héllo", 42, "x"])
    assert ours == ["k", "héllo", 42, ["x", None], 1] and theirs == ["k", "héllo", 42, ["x", None], 2]
    await plain.aclose()


async def test_concurrent_calls_each_get_their_own_reply(lean):
    replies = await asyncio.gather(*(lean.evalsha(*ECHO, ["c"], [str(i), i, ""]) for i in range(500)))
    assert [r[1] for r in replies] == [str(i) for i in range(500)]
    assert sorted(r[4] for r in replies) == list(range(1, 501))


async def test_a_cancelled_caller_leaves_the_connection_in_step(lean):
    slow = script("local t = redis.call('TIME'); local n = 0; for i = 1, 300000 do n = n + i end; return ARGV[1]")
    gone = asyncio.ensure_future(lean.evalsha(*slow, ["s"], ["first"]))
    await asyncio.sleep(0)
    nxt = asyncio.ensure_future(lean.evalsha(*slow, ["s"], ["second"]))
    await asyncio.sleep(0.001)
    gone.cancel()
    assert await nxt == "second"
    assert await lean.evalsha(*ECHO, ["s"], ["third", 1, ""]) is not None


async def test_a_flushed_script_cache_is_filled_again(lean, real_redis_url):
    plain = Redis.from_url(real_redis_url)
    await lean.evalsha(*ECHO, ["f"], ["a", 1, ""])
    await plain.script_flush()
    assert (await lean.evalsha(*ECHO, ["f"], ["b", 2, ""]))[1] == "b"
    await plain.aclose()


async def test_error_replies_raise_redis_pys_exceptions(lean):
    with pytest.raises(NoPermissionError):
        await lean.evalsha(*script("return redis.error_reply('NOPERM this user has no permissions')"), ["e"], [])
    with pytest.raises(ResponseError, match="boom"):
        await lean.evalsha(*script("error('boom')"), ["e"], [])
    assert (await lean.evalsha(*ECHO, ["e"], ["after", 1, ""]))[1] == "after"


async def test_a_restarted_redis_is_reconnected_to_and_a_dead_one_is_a_connection_error(monkeypatch):
    with redis_server(password="s3cret") as proc:
        client = LeanRedis(proc.url.replace("/0", "/3"))
        try:
            assert (await client.evalsha(*ECHO, ["r"], ["a", 1, ""]))[4] == 1
            db3 = Redis.from_url(proc.url.replace("/0", "/3"))
            assert await db3.get("rn") == b"1", "AUTH and SELECT were sent"
            await db3.aclose()
            proc.stop()
            proc.start()
            assert (await client.evalsha(*ECHO, ["r"], ["b", 1, ""]))[1] == "b"
            proc.stop()
            monkeypatch.setattr(redis_lean, "RETRIES", 1)
            with pytest.raises(ConnectionError):
                await client.evalsha(*ECHO, ["r"], ["c", 1, ""])
        finally:
            await client.aclose()


async def test_the_claim_race_through_the_lean_connection(real_redis_url):
    plain = Redis.from_url(real_redis_url, decode_responses=True)
    await plain.flushdb()
    client = LeanRedis(real_redis_url)
    store = Store(plain, lean=client)
    try:
        wf = await submit(store, *(job(f"j{i}") for i in range(200)))
        leased: list[str] = []

        async def loop(worker: str) -> None:
            got = await store.claim_many(ClaimArgs(worker, [], 30, [f"{worker}-{i}" for i in range(5)]))
            n = 0
            while got:
                leased.extend(c.job.job_id for c in got)
                n += 1
                _, got = await store.results([Completed(c.lease.lease_id, {}) for c in got], "*",
                                             ClaimArgs(worker, [], 30, [f"{worker}-{n}-{i}" for i in range(5)]))

        await asyncio.gather(*(loop(f"w{i}") for i in range(12)))
        assert sorted(leased) == sorted(f"j{i}" for i in range(200))
        assert (await store.get_workflow(wf)).status == "success"
    finally:
        await client.aclose()
        await plain.aclose()
