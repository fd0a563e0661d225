"""The ready-queue index (issue 14, item 8): a claim costs what its labels
can serve, never the number of label sets queued, and nothing is kept per
worker label key, so claims offering labels never seen before cost what
familiar ones do. Both stores; the tests that count Redis commands (INFO
commandstats) run on real Redis only."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from server.models import WorkflowSpec
from tests.helpers import claim, job, lease_id, submit


async def _labelsets(store) -> set[str]:
    return await store.redis.smembers(store.prefix + "labelsets")


async def _index(store) -> dict[str, str]:
    return await store.redis.hgetall(store.prefix + "lsindex")


def expected_index(labelsets: set[str]) -> dict[str, str]:
    """The trie _ready.lua keeps for these non-empty label keys: each prefix
    (by whole labels, "" first) counts 2 per key below it, 1 if it is one."""
    counts: dict[str, int] = {}
    for lk in labelsets:
        prefix = ""
        for i, label in enumerate(lk.split(",") if lk else []):
            counts[prefix] = counts.get(prefix, 0) + 2
            prefix = label if i == 0 else f"{prefix},{label}"
        counts[lk] = counts.get(lk, 0) + 1
    return {k: str(v) for k, v in counts.items()}


async def _commands(store) -> dict[str, int]:
    stats = await store.redis.info("commandstats")
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}


def _diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    skip = {"info", "evalsha", "eval", "fcall", "function", "script", "dbsize"}
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0) and k not in skip}


async def test_label_sets_leave_the_index_when_emptied(store):
    wfs = [await submit(store, job("a", labels=[f"l{i}"])) for i in range(50)]
    gpu_wf = await submit(store, job("a", labels=["gpu"]))
    assert len(await _labelsets(store)) == 51
    assert await _index(store) == expected_index(await _labelsets(store))
    for wf in wfs:
        await store.cancel_workflow(wf)  # cancel empties their queues
    assert await _labelsets(store) == {"gpu"}
    assert await _index(store) == {"": "2", "gpu": "1"}
    assert (await claim(store, "gpu-box", ["gpu"])).job.workflow_id == gpu_wf  # the claim empties this one
    assert await _labelsets(store) == set()
    assert await _index(store) == {}
    # a re-run fills it again
    await store.cancel_workflow(gpu_wf)
    await store.run_workflow(gpu_wf)
    assert await _labelsets(store) == {"gpu"}
    assert await _index(store) == {"": "2", "gpu": "1"}


async def test_claim_cost_does_not_grow_with_label_sets_it_cannot_serve(store, backend):
    if backend != "redis":
        pytest.skip("counts Redis commands (INFO commandstats), which fakeredis does not keep")
    for i in range(2000):
        await submit(store, job("a", labels=[f"other-{i}"]))
    await submit(store, job("a", labels=["linux"]))

    async def zranges_of_one_claim() -> int:
        before = (await store.redis.info("commandstats")).get("cmdstat_zrange", {}).get("calls", 0)
        got = await claim(store, "w", ["linux"])
        after = (await store.redis.info("commandstats"))["cmdstat_zrange"]["calls"]
        return got, after - before

    got, zranges = await zranges_of_one_claim()
    assert got is not None and got.job.required_labels == ["linux"]
    assert zranges <= 3  # its one queue (plus the delayed-set peek), not 2,001
    got, zranges = await zranges_of_one_claim()
    assert got is None and zranges <= 3


async def test_claims_offering_new_labels_read_no_whole_set_and_keep_nothing(store, backend):
    """The audit's reproduction: 20,000 label sets "a,zzN" queued, claims
    each offering a label key never seen before. Each used to scan every
    queued set inside Lua (p50 134 ms) and leave an index entry behind."""
    if backend != "redis":
        pytest.skip("counts Redis commands (INFO commandstats), which fakeredis does not keep")
    for start in range(0, 20_000, 1000):
        jobs = [job(f"j{i}", labels=["a", f"zz{i:05d}"]) for i in range(start, start + 1000)]
        await store.create_workflow(WorkflowSpec(name="sets", jobs=jobs), f"sets-{start}", run=True)
    assert len(await _labelsets(store)) == 20_000
    await claim(store, "fresh", ["a", "b"])  # the worker's own record exists from here on
    keys = await store.redis.dbsize()
    before = await _commands(store)
    claims = 200
    for i in range(claims):
        assert await claim(store, "fresh", ["a", "b", f"fresh-{i}"]) is None
    used = _diff(await _commands(store), before)
    # Nothing that reads a whole set or hash: only its own label subsets
    # ("", "a", "b", "fresh-i" in one HMGET, then "a,b" and "a,fresh-i").
    assert not {"smembers", "sscan", "hgetall", "hkeys", "hvals", "hscan", "zrange", "keys", "scan"} & set(used)
    assert used["hmget"] <= 3 * claims  # two trie lookups and the lease check each
    assert sum(used.values()) <= 10 * claims
    assert await store.redis.dbsize() == keys  # nothing kept per label key
    # and a claim that can serve one finds it, however deep in the trie
    got = await claim(store, "w", ["zz12345", "a", "b"])
    assert got is not None and got.job.job_id == "j12345"


@dataclass
class Queued:
    wf: str
    labels: set[str]
    priority: int
    order: int


async def test_a_claim_takes_the_best_job_it_can_serve_and_the_index_stays_exact(store):
    """Against a model of the rule: the highest priority, then the oldest,
    of the jobs whose labels the worker has all of (an exclusive worker
    takes none without labels), over random label sets and workers."""
    rng = random.Random(14)
    labels = ["a", "b", "c", "d", "e"]
    queued: list[Queued] = []
    for i in range(80):
        wanted = sorted(rng.sample(labels, rng.randint(0, 3)))
        priority = rng.choice([0, 0, 0, 5])
        wf = await submit(store, job("j", labels=wanted, priority=priority))
        queued.append(Queued(wf, set(wanted), priority, i))
    assert await _index(store) == expected_index(await _labelsets(store))
    tries = 0
    while queued:
        tries += 1
        assert tries < 2000
        offered = set(rng.sample(labels, rng.randint(0, 5)))
        exclusive = rng.random() < 0.3
        if tries % 5 == 0:
            offered, exclusive = set(labels), False  # so the queue drains
        got = await store.claim("w", sorted(offered), 30, lease_id(), exclusive=exclusive)
        servable = [q for q in queued if q.labels <= offered and not (exclusive and not q.labels)]
        if not servable:
            assert got is None, (offered, exclusive)
            continue
        best = min(servable, key=lambda q: (-q.priority, q.order))
        assert got is not None and got.job.workflow_id == best.wf, (offered, exclusive)
        queued.remove(best)
        assert await _index(store) == expected_index(await _labelsets(store))
    assert await _labelsets(store) == set()
    assert await _index(store) == {}


async def test_data_kept_by_an_older_version_is_indexed_once(store):
    gpu_wf = await submit(store, job("a", labels=["gpu"]))
    any_wf = await submit(store, job("a"))
    # as the per-worker-label-key index left it: no trie, `wkeys` and
    # `serve:<wk>`, and a label set whose queue has gone
    await store.redis.delete(store.prefix + "lsindex", store.prefix + "layout")
    await store.redis.zadd(store.prefix + "wkeys", {"gpu": 1})
    await store.redis.sadd(store.prefix + "serve:gpu", "gpu")
    await store.redis.sadd(store.prefix + "labelsets", "gone")
    assert await store.upgrade() == 3
    assert await _labelsets(store) == {"gpu", ""}
    assert await _index(store) == expected_index({"gpu", ""})
    assert not await store.redis.exists(store.prefix + "wkeys", store.prefix + "serve:gpu")
    assert await store.upgrade() == 3  # once: a second call changes nothing
    assert await _index(store) == expected_index({"gpu", ""})
    assert (await claim(store, "w", ["gpu"])).job.workflow_id == gpu_wf
    assert (await claim(store, "w", ["gpu"])).job.workflow_id == any_wf


async def test_the_server_upgrades_the_data_before_serving(app):
    store = app.state.store
    assert await store.redis.get(store.prefix + "layout") == "3"
