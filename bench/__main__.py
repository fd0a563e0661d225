"""`make bench`: first issue 19's table, rota's side of every row
(bench/table.py, each part on a fresh redis-server); then starts a real
redis-server and one rota server process, measures the seed protocol end
to end over loopback and prints figures.

  1. claim->complete throughput, no-op jobs, 1 and 8 concurrent clients,
     with auth off and with auth on (a worker token on every call); then
     the batch protocol beside the seed protocol, with the server's and
     Redis's CPU per job (bench/batch_bench.py)
  2. idle dispatch latency with long-poll (enqueue -> the waiting worker has it)
  3. a 50-job chain's wall time through the protocol
  4. the worker daemon figures (bench/worker_bench.py), when present
  5. the fleet figures (bench/fleet_bench.py), and how long hostile workflow
     documents take to refuse (bench/definitions_bench.py)
  6. the dashboard in headless chromium with real volumes (bench/ui_bench.py)
  7. claims against 20,000 queued label sets (bench/labelsets_bench.py)
  8. concurrency groups against the claim path (bench/groups_bench.py)
  9. GET /metrics with 10,000 queued jobs and 1,000 workers (bench/metrics_bench.py)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import tempfile

from bench.protocol import chain, dispatch_latency, pct, start_server, throughput, worker_token
from tests.redis_proc import RedisProcess, free_port


THROUGHPUT_RUNS = ((1, 3000), (8, 10000))
# Auth off and on alternate, so a drift in the machine's speed (a shared VM
# varies by tens of percent within minutes) hits both alike.
ROUNDS = 3


async def throughputs(port: int, redis_url: str) -> None:
    auth_port = free_port()
    auth_server = start_server(redis_url, auth_port, auth=True)
    try:
        token = await worker_token(auth_port)
        for clients, total in THROUGHPUT_RUNS:
            off, on = [], []
            for _ in range(ROUNDS):
                off.append(await throughput(port, clients, total))
                on.append(await throughput(auth_port, clients, total, token))
            a, b = statistics.median(off), statistics.median(on)
            print(f"  claim->complete, {clients} client(s), {total} no-op jobs, median of {ROUNDS}:"
                  f" auth off {a:,.0f} jobs/s, auth on {b:,.0f} jobs/s ({b / a:.0%})")
    finally:
        auth_server.terminate()
        auth_server.wait(10)


async def main_async(port: int, redis_url: str, server_pid: int, redis_pid: int) -> None:
    print(f"rota bench: one server process, real redis-server, {os.cpu_count()} cores, loopback")
    await throughputs(port, redis_url)
    from bench import batch_bench

    await batch_bench.main(port, server_pid, redis_pid)
    lat = await dispatch_latency(port, 200)
    print(f"  idle dispatch latency (long-poll, 200 samples): p50 {pct(lat, 50):.2f} ms, "
          f"p99 {pct(lat, 99):.2f} ms, mean {statistics.mean(lat):.2f} ms")
    walls = [await chain(port, 50) for _ in range(5)]
    print(f"  50-job chain through the protocol: best {min(walls) * 1000:.0f} ms, "
          f"median {statistics.median(walls) * 1000:.0f} ms (5 runs)")


def main() -> None:
    if not shutil.which("redis-server"):
        raise SystemExit("make bench needs redis-server (apt-get install redis-server)")
    from bench import table

    asyncio.run(table.main())
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisProcess(free_port(), tmp)
        redis.start()
        port = free_port()
        server = start_server(redis.url, port)
        try:
            asyncio.run(main_async(port, redis.url, server.pid, redis.proc.pid))
            try:
                from bench import worker_bench
            except ImportError:
                worker_bench = None
            if worker_bench is not None:
                asyncio.run(worker_bench.main(f"http://127.0.0.1:{port}", server.pid))
            from bench import definitions_bench, fleet_bench, groups_bench

            asyncio.run(fleet_bench.main(f"http://127.0.0.1:{port}", port, redis.url))
            definitions_bench.main()
            from bench import ui_bench

            asyncio.run(ui_bench.main(f"http://127.0.0.1:{port}", redis.url))
            from bench import labelsets_bench

            asyncio.run(labelsets_bench.main(redis.url))
            from bench import metrics_bench

            asyncio.run(metrics_bench.main(redis.url))
            # two fresh servers, each on a namespace of its own: one with groups, one without
            plain_port, grouped_port = free_port(), free_port()
            plain = start_server(redis.url, plain_port, namespace="rota-plain")
            grouped = start_server(redis.url, grouped_port, namespace="rota-groups")
            try:
                asyncio.run(groups_bench.main(plain_port, grouped_port, redis.url))
            finally:
                for proc in (plain, grouped):
                    proc.terminate()
                    proc.wait(10)
        finally:
            server.terminate()
            server.wait(10)
            redis.stop()


if __name__ == "__main__":
    main()
