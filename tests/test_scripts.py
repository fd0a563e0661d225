"""The hot path's scripts as Redis Functions (server/scripts.py): one Lua
source runs as EVALSHA (the embedded store) and as a function library (a
real Redis), whose helpers are defined once and whose per-call state must
start afresh on every call. The acceptance tests of the scripts run on both
stores (tests/conftest.py), so on a real Redis they run the functions."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from redis.asyncio import Redis

from server import scripts
from server.store import Store
from tests.helpers import claim, job, submit

# Chunk-level locals of the includes that no call changes.
CONSTANTS = {
    "P", "unpack", "MAX_GROUP_PENDING", "CONCLUDED", "SAID", "FAILURE_REASONS", "JOB_DEFAULTS", "RETRYABLE", "ACTIVE", "TERMINAL",
    # forward declarations of functions _control.lua defines
    "job_enters_group", "job_leaves_group", "run_settles", "run_begins",
    # what runs at a call's end, filled when the helpers load
    "AT_END",
}
_LOCAL = re.compile(r"^local (?!function\b)([\w, ]+?)(?: = .*?)?$", re.MULTILINE)


def test_every_chunk_level_local_a_call_may_change_is_declared_per_call():
    """A library keeps its chunk-level locals between calls: one that a call
    changes and that is not reset (`-- per call`) would leak into the next."""
    lua = scripts.resources.files("server") / "lua"
    found = []
    for path in sorted(lua.iterdir()):
        if not (path.name.startswith("_") and path.name.endswith(".lua")):
            continue
        for line in path.read_text().splitlines():
            if line.endswith("-- per call"):
                continue
            m = _LOCAL.match(line)
            if m:
                found += [(path.name, name.strip()) for name in m.group(1).split(",")
                          if name.strip() not in CONSTANTS]
    assert found == [], "mark these `-- per call` (reset before each call) or list them as constants"


def test_a_library_resets_each_per_call_local_of_its_includes():
    _, lib = scripts.library("results")
    reset = lib.rsplit("redis.register_function", 1)[1]
    for name in ("NOW", "PUBLISHED", "NOTES", "DECIDE", "CLAIMANTS", "CLAIMED_RUNS", "SERVABLE", "TOUCHED",
                 "promoted_all", "SUPPRESSED", "COUNTS_ADDED", "COUNTS_KNOWN", "PURGED"):
        assert re.search(rf"^{name} = ", reset, re.MULTILINE), name
    assert "P = keys[1]" in reset
    assert "unpack or table.unpack" not in lib  # a library has no global unpack


@pytest.fixture
async def real_store(real_redis_url):
    client = Redis.from_url(real_redis_url, decode_responses=True)
    await client.flushdb()
    store = Store(client, namespace="fn-" + uuid.uuid4().hex[:8])
    yield store
    await client.aclose()


async def test_hot_scripts_run_as_functions_on_a_real_redis(real_store):
    await submit(real_store, job("a"))
    assert (await claim(real_store)) is not None
    assert real_store.scripts.functions is True
    fn, _ = scripts.library("claim")
    libraries = await real_store.redis.execute_command("FUNCTION", "LIST", "LIBRARYNAME", fn)
    assert libraries, "the claim's library is loaded"


async def test_a_call_starts_from_nothing_the_call_before_kept(real_store):
    """Two calls of one library: the second reads the clock again (a kept
    NOW would leave the worker's last_seen as it was), touches the worker
    again (TOUCHED), and tells its run's listeners again (PUBLISHED)."""
    wf = await submit(real_store, job("a"), job("b"))
    worker_key = real_store.prefix + "worker:w1"
    first = await claim(real_store)
    seen = int(await real_store.redis.hget(worker_key, "last_seen"))
    run = first.job.run_id
    pubsub = real_store.redis.pubsub()
    await pubsub.subscribe(real_store.prefix + "r:" + run)
    deadline = asyncio.get_running_loop().time() + 30
    while int((await real_store.redis.time())[0]) * 1000 <= seen:  # the clock moves on a millisecond at least
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    second = await claim(real_store)
    assert second is not None and second.job.workflow_id == wf
    assert int(await real_store.redis.hget(worker_key, "last_seen")) > seen
    messages = []
    while asyncio.get_running_loop().time() < deadline and len(messages) < 1:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        if message:
            messages.append(message["data"])
    assert messages == ["job"]  # the second claim's event, though the first call sent the same
    await pubsub.aclose()


async def test_a_library_redis_lost_is_loaded_again(real_store):
    await submit(real_store, job("a"), job("b"))
    assert (await claim(real_store)) is not None
    await real_store.redis.execute_command("FUNCTION", "FLUSH")
    assert (await claim(real_store)) is not None
    assert real_store.scripts.functions is True


@pytest.mark.parametrize("refused", ["-function", "-fcall"])
async def test_a_redis_that_refuses_functions_keeps_evalsha(real_redis_url, real_store, refused):
    """An ACL user without FUNCTION (no LOAD), or without FCALL itself."""
    user = "nofn" + uuid.uuid4().hex[:6]
    await real_store.redis.execute_command("FUNCTION", "FLUSH")
    await real_store.redis.execute_command("ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", refused)
    limited = Redis.from_url(real_redis_url.replace("redis://", f"redis://{user}:pw@"), decode_responses=True)
    try:
        store = Store(limited, namespace=real_store.prefix[1:-2])
        await submit(store, job("a"))
        assert (await claim(store)) is not None
        assert store.scripts.functions is False
    finally:
        await limited.aclose()
        await real_store.redis.execute_command("ACL", "DELUSER", user)
