"""Dashboard figures in headless chromium, with real volumes (skipped, with a
line saying so, without chromium or playwright):

- the DAG layout of 1,000 jobs in the browser (dag.js's layout alone), median of 5;
- a run of 1,000 jobs: navigation -> every node drawn and the event stream live;
- the runs page with 100,000 runs: navigation -> its first page of rows;
- the workers page with 1,000 workers: navigation -> the table;
- a job log of 100 MB: navigation -> its last line shown, and the lines kept.

The data goes straight into the server's Redis through the store (100,000
runs over HTTP would take minutes); the pages read it over HTTP as an
operator's browser does. `python -m bench.ui_bench` runs it alone against an
embedded server and a redis-server of its own.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import time
import uuid

from redis.asyncio import Redis

from server.models import JobSpec, LogChunk, RegisterRequest, WorkflowSpec
from server.store import Store

RUNS = 100_000
WORKERS = 1_000
BIG_RUN_JOBS = 1_000
LOG_BYTES = 100 * 1024 * 1024
CHUNK_BYTES = 10 * 1024  # LOG_MAX_CHUNKS (10,000) of these hold 100 MB
NOBODY = "bench-ui-nobody"  # a label no worker offers: jobs stay queued


def _chromium() -> str | None:
    path = os.environ.get("ROTA_CHROMIUM") or shutil.which("chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None
    return path


async def _fill(redis_url: str) -> dict:
    redis = Redis.from_url(redis_url, decode_responses=True)
    store = Store(redis)
    if hasattr(store, "log_max_bytes"):  # a byte budget per attempt (LOG_MAX_BYTES): this log is over the default
        store.log_max_bytes = 2 * LOG_BYTES
    out = {}
    t = time.perf_counter()
    wf = f"bench-ui-{uuid.uuid4().hex[:6]}"
    await store.create_workflow(WorkflowSpec(name="bench ui", jobs=[JobSpec(id="only", name="only", command="true",
                                                                            labels=[NOBODY])]), wf, run=False)
    for start in range(0, RUNS, 50):
        await asyncio.gather(*(store.start_run(wf, tags={"i": str(i)}) for i in range(start, min(RUNS, start + 50))))
    out["runs_setup_s"] = time.perf_counter() - t
    out["runs_workflow"] = wf
    for start in range(0, WORKERS, 50):
        await asyncio.gather(*(store.register_worker(RegisterRequest(
            worker_id=f"bench-ui-w{i:04d}", labels=["linux", f"pool-{i % 10}"], concurrency=4, version="bench",
            host=f"host-{i}")) for i in range(start, start + 50)))
    big = f"bench-ui-big-{uuid.uuid4().hex[:6]}"
    jobs = [JobSpec(id=f"j{i}", name=f"job {i}", command="true", labels=[NOBODY],
                    needs=[f"j{i - 10}"] if i >= 10 else []) for i in range(BIG_RUN_JOBS)]
    await store.create_workflow(WorkflowSpec(name="bench big", jobs=jobs), big, run=True)
    out["big_run"] = await store.latest_run(big)
    # One job with a 100 MB log, coloured lines, the last one known.
    label = f"bench-ui-log-{uuid.uuid4().hex[:6]}"
    logs = f"bench-ui-log-{uuid.uuid4().hex[:6]}"
    await store.create_workflow(WorkflowSpec(name="bench log", jobs=[JobSpec(id="talk", name="talk", command="true",
                                                                             labels=[label])]), logs, run=True)
    claimed = await store.claim("bench-ui-logger", [label], 3600, str(uuid.uuid4()))
    line = "\x1b[32mok\x1b[0m " + "x" * 90 + "\n"
    per_chunk = CHUNK_BYTES // len(line)
    chunks = LOG_BYTES // (per_chunk * len(line))
    seq = 0
    for start in range(0, chunks, 100):
        batch = []
        for _ in range(start, min(chunks, start + 100)):
            text = line * per_chunk if seq < chunks - 1 else line * (per_chunk - 1) + "THE END\n"
            batch.append(LogChunk(workflow_id=logs, job_id="talk", sequence=seq, data=text, timestamp_ms=seq))
            seq += 1
        await store.append_logs(claimed.lease.lease_id, batch)
    out["log_run"] = claimed.lease.run_id
    out["log_mb"] = seq * per_chunk * len(line) / 1024 / 1024
    await redis.aclose()
    return out


def _measure(url: str, data: dict, chromium: str) -> list[str]:
    from playwright.sync_api import sync_playwright

    lines = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(base_url=url, viewport={"width": 1400, "height": 900})

        def timed(path: str, selector: str, timeout_s: float = 120) -> float:
            t = time.perf_counter()
            page.goto(path)
            page.wait_for_selector(selector, timeout=timeout_s * 1000)
            return (time.perf_counter() - t) * 1000

        took = timed(f"/ui/runs/{data['big_run']}", "body[data-stream=live]")
        nodes = page.locator("g.node").count()
        layouts = [page.evaluate("""async () => {
            const { layout } = await import('/ui/static/dag.js');
            const nodes = [...Array(1000).keys()].map((i) => 'j' + i);
            const edges = nodes.slice(10).map((n, i) => ['j' + i, n]);
            const t = performance.now();
            layout(nodes, edges);
            return performance.now() - t;
        }""") for _ in range(5)]
        lines.append(f"  DAG layout of 1,000 jobs in chromium: median {statistics.median(layouts):.0f} ms (5 runs)")
        lines.append(f"  run page, 1,000 jobs: {nodes} nodes drawn and its event stream live in {took:.0f} ms")
        took = timed("/ui", "table.runs tr[data-run]")
        lines.append(f"  runs page, {RUNS:,} runs: first 50 rows in {took:.0f} ms")
        took = timed(f"/ui?q={data['runs_workflow']}&tag=i:7", "table.runs tr[data-run], #runs .empty")
        lines.append(f"  runs page, {RUNS:,} runs, a tag filter and a search: first answer in {took:.0f} ms"
                     " (a page scans at most 10,000 runs, then offers to look further back)")
        took = timed("/ui/workers", "tr[data-worker]")
        shown = page.locator("tr[data-worker]").count()
        lines.append(f"  workers page, {WORKERS:,} workers: {shown} rows in {took:.0f} ms")
        try:
            took = timed(f"/ui/runs/{data['log_run']}#job=talk", "#log .line >> text=THE END", timeout_s=300)
            kept = page.locator("#log .line").count()
            heap = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0") / 1024 / 1024
            lines.append(f"  job log of {data['log_mb']:.0f} MB: last line shown in {took:.0f} ms,"
                         f" {kept:,} lines kept on the page, JS heap {heap:.0f} MB")
        except Exception as exc:  # a figure, not a verdict
            lines.append(f"  job log of {data['log_mb']:.0f} MB: the last line was not shown within 300 s ({exc!s:.80})")
        browser.close()
    return lines


async def main(server_url: str, redis_url: str) -> None:
    chromium = _chromium()
    if not chromium:
        print("dashboard bench: skipped (needs chromium and playwright)")
        return
    print("dashboard bench (headless chromium; the data written straight through the store):")
    data = await _fill(redis_url)
    print(f"  setup: {RUNS:,} runs in {data['runs_setup_s']:.0f} s")
    for line in await asyncio.to_thread(_measure, server_url, data, chromium):
        print(line)


if __name__ == "__main__":
    import tempfile

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench.protocol import start_server
    from tests.redis_proc import RedisProcess, free_port

    with tempfile.TemporaryDirectory() as tmp:
        redis_proc = RedisProcess(free_port(), tmp)
        redis_proc.start()
        port = free_port()
        server = start_server(redis_proc.url, port)
        try:
            asyncio.run(main(f"http://127.0.0.1:{port}", redis_proc.url))
        finally:
            server.terminate()
            server.wait(10)
            redis_proc.stop()
