"""The hot path's Lua of another checkout against this one's, inside one
Redis: `python -m bench.lua_ab --base DIR [--seed] [--rounds N]`.

The same queued jobs are drained through the store, the calls alternating
between the two versions' function libraries (A: DIR's server/lua, B:
this checkout's), batch by batch (results of 32 with the next claim of 32)
or, with --seed, job by job (a claim, then its complete). Redis times each
FCALL itself (SLOWLOG, set to log calls above 300 us for batches, 20 us
for --seed, so a call's own commands are not logged inside it). Drift in
a shared VM's speed (tens of percent within minutes) then hits both
versions alike; separate runs, compared by Redis's CPU from /proc, cannot
resolve differences below about 10%.

Each version's libraries are built by its own checkout (its
server/scripts.py), so any two versions with Redis Functions compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import redis as redis_py
from redis.asyncio import Redis

from bench import batch_bench
from bench.protocol import start_server, stop_server
from server import scripts
from server.store import Store
from server.store.batch import ClaimArgs, Completed
from tests.redis_proc import RedisProcess, free_port

HOT = ("results", "claim_many", "claim", "complete")
BATCH, JOBS, SEED_JOBS = 32, 40_000, 20_000


def libraries(checkout: Path) -> dict[str, tuple[str, str]]:
    """{script: (function name, library)} as the checkout at `checkout` builds them."""
    code = ("import json; from server import scripts;"
            f" print(json.dumps({{n: scripts.library(n) for n in {HOT!r}}}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=checkout, capture_output=True, text=True, check=True)
    return {name: tuple(lib) for name, lib in json.loads(out.stdout).items()}  # type: ignore[misc]


async def drain(url: str, versions: list[dict], seed: bool) -> None:
    """Drains the queue through the store, each call through the next version in turn."""
    client = Redis.from_url(url, decode_responses=True)
    store = Store(client)
    store.scripts.functions = True
    own = scripts.library
    turn = {"i": 0}
    scripts.library = lambda name: versions[turn["i"] % len(versions)][name]  # type: ignore[assignment]

    def claim(n: int) -> ClaimArgs:
        return ClaimArgs("ab", [], 60, [uuid.uuid4().hex for _ in range(n)], claim_id=uuid.uuid4().hex)

    try:
        if seed:
            for _ in range(SEED_JOBS):
                got = await store.claim("ab", [], 60, uuid.uuid4().hex)
                if got is None:
                    break
                await store.complete(got.lease.lease_id, {})
                turn["i"] += 1
        else:
            got = await store.claim_many(claim(BATCH))
            while got:
                _, got = await store.results([Completed(c.lease.lease_id, {}) for c in got], claim=claim(BATCH))
                turn["i"] += 1
    finally:
        scripts.library = own  # type: ignore[assignment]
        await client.aclose()


def per_job(log: list, names: dict[str, str], seed: bool) -> dict[str, float]:
    """Redis's microseconds per job of each version, from SLOWLOG entries."""
    spent: dict[str, float] = {"A": 0.0, "B": 0.0}
    jobs: dict[str, int] = {"A": 0, "B": 0}
    for entry in log:
        args = entry[3]
        fn = args[1].decode() if args[0] == b"FCALL" else ""
        if fn not in names or not (seed or fn.startswith("rota_results_")):
            continue
        side = names[fn]
        spent[side] += entry[2]
        if seed:
            jobs[side] += fn.startswith("rota_complete_")
        else:
            jobs[side] += int(args[5])  # a results call's count of results
    return {side: spent[side] / max(1, jobs[side]) for side in spent}


async def run(base: Path, seed: bool, rounds: int) -> None:
    a, b = libraries(base), libraries(Path(__file__).resolve().parent.parent)
    if all(a[n] == b[n] for n in HOT):
        raise SystemExit("the two checkouts' hot scripts are the same")
    names = {a[n][0]: "A" for n in HOT} | {b[n][0]: "B" for n in HOT}
    figures: dict[str, list[float]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisProcess(free_port(), tmp)
        redis.start()
        sync = redis_py.Redis.from_url(redis.url)
        # The queue once, through a server of this checkout, kept as a dump
        # every round starts from.
        port = free_port()
        server = start_server(redis.url, port)
        try:
            await batch_bench.fill(port, (SEED_JOBS if seed else JOBS) + BATCH)
        finally:
            stop_server(server)
        sync.execute_command("FUNCTION", "FLUSH")
        sync.save()
        dump = Path(tmp) / "dump.rdb"
        shutil.copy(dump, Path(tmp) / "filled.rdb")
        for r in range(rounds):
            redis.stop()
            shutil.copy(Path(tmp) / "filled.rdb", dump)
            redis.start()
            sync = redis_py.Redis.from_url(redis.url)
            sync.config_set("slowlog-log-slower-than", 20 if seed else 300)
            sync.config_set("slowlog-max-len", 1_000_000)
            for lib in [*a.values(), *b.values()]:
                try:
                    sync.execute_command("FUNCTION", "LOAD", lib[1])
                except redis_py.ResponseError as exc:
                    if "already exists" not in str(exc):
                        raise
            sync.slowlog_reset()
            # which goes first alternates by round
            await drain(redis.url, [a, b] if r % 2 == 0 else [b, a], seed)
            got = per_job(sync.execute_command("SLOWLOG", "GET", "-1"), names, seed)
            for side in figures:
                figures[side].append(got[side])
            print(f"  round {r + 1}: A {got['A']:.1f} us a job, B {got['B']:.1f} us ({got['B'] / got['A'] - 1:+.1%})",
                  flush=True)
            sync.close()
        redis.stop()
    what = "a claim and its complete, one job a call" if seed else f"results of {BATCH} with the next claim of {BATCH}"
    ma, mb = statistics.median(figures["A"]), statistics.median(figures["B"])
    print(f"Redis's time per job in the hot scripts ({what}), median of {rounds} rounds:"
          f" A ({base}) {ma:.1f} us, B (this checkout) {mb:.1f} us: {mb - ma:+.1f} us ({mb / ma - 1:+.1%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, type=Path, help="a checkout of the other version")
    parser.add_argument("--seed", action="store_true", help="one job a call (the seed protocol's claim, complete)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not (args.base / "server" / "scripts.py").is_file():
        sys.exit(f"{args.base} is not a rota checkout")
    asyncio.run(run(args.base, args.seed, args.rounds))


if __name__ == "__main__":
    main()
