"""The per-process pub/sub notifier across Redis outages: whatever was
subscribed before, during or after an outage hears its messages once Redis
is back."""

from __future__ import annotations

import asyncio
import tempfile

import pytest
from redis.asyncio import Redis

from server.notifier import Notifier
from server.redis_conn import connect_pubsub
from server.settings import Settings
from tests.redis_proc import RedisProcess, free_port

pytestmark = pytest.mark.slow


async def published_to(notifier: Notifier, channel: str, publisher: Redis) -> bool:
    async with notifier.watch(channel) as watch:
        for _ in range(100):  # until the subscription is live again
            watch.reset()
            await publisher.publish(channel, "x")
            try:
                await asyncio.wait_for(watch.event.wait(), 0.1)
                return True
            except asyncio.TimeoutError:
                continue
    return False


async def test_channels_watched_during_an_outage_hear_messages_after_it():
    with tempfile.TemporaryDirectory() as tmp:
        proc = RedisProcess(free_port(), tmp)
        proc.start()
        settings = Settings(redis_url=proc.url)
        notifier = Notifier(connect_pubsub(settings), "{rota}:wake")
        await notifier.start()
        publisher = Redis.from_url(proc.url)
        try:
            before = asyncio.create_task(_hold(notifier, "{rota}:j:w:before"))
            await asyncio.sleep(0.05)
            proc.stop(kill=True)
            during = [asyncio.create_task(_hold(notifier, f"{{rota}}:j:w:during{i}")) for i in range(5)]
            # Longer than the client's first reconnect attempts: a short blip
            # was always survived, a second-long outage was not.
            await asyncio.sleep(1.0)
            proc.start()
            for name in ("before", *(f"during{i}" for i in range(5))):
                assert await published_to(notifier, f"{{rota}}:j:w:{name}", publisher), name
            assert await published_to(notifier, "{rota}:j:w:after", publisher)
            with notifier.claim_waiter([]) as waiter:
                for _ in range(100):
                    await publisher.publish("{rota}:wake", "")
                    if waiter.event.is_set():
                        break
                    await asyncio.sleep(0.1)
                assert waiter.event.is_set(), "claim wake-ups resume"
            for task in (before, *during):
                task.cancel()
        finally:
            await notifier.stop()
            await publisher.aclose()
            proc.stop()


async def _hold(notifier: Notifier, channel: str) -> None:
    async with notifier.watch(channel):
        await asyncio.sleep(3600)


def test_an_unlabelled_job_wakes_a_worker_that_takes_it_not_an_exclusive_one():
    notifier = Notifier(None, "{rota}:wake")  # _offer needs no connection
    with notifier.claim_waiter(["deploy"], exclusive=True) as deploy_box, \
            notifier.claim_waiter(["linux"]) as builder:
        notifier._offer("")  # the exclusive one waits longer, and still is not woken for it
        assert (deploy_box.token, builder.token) == (None, "")
        notifier._offer("deploy")
        assert deploy_box.token == "deploy" and deploy_box.event.is_set()
