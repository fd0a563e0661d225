"""The dashboard in a real browser (headless chromium) against a real server
process with auth on and real `rota worker` processes, asserting what a
person sees: the runs page through the token form, a run's graph changing
colour as its jobs run (pushed by the event stream: no polling request),
a log growing, a gate approved and a dead letter replayed from the page, a
hostile workflow shown as plain text with nothing run, and the workers and
queues pages. One browser and one server for the module; screenshots of
each page are saved (tests/browser.py says where). The fixtures are
tests/dashboard_kit.py's."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from tests import dashboard_kit as kit
from tests.browser import require_browser, wait_for
from tests.dashboard_kit import ROTA, node, submit, wait_file
from tests.server_proc import ServerProcess

pytestmark = pytest.mark.slow
require_browser()
# The fixtures used here: one server and one browser for the module.
server, admin, tokens, browser, open_page, workers = (
    kit.server, kit.admin, kit.tokens, kit.browser, kit.open_page, kit.workers)


# ---- the token, and the runs page -------------------------------------------------------


def test_the_operator_pastes_a_token_then_sees_the_runs(admin, tokens, open_page):
    submit(admin, {"name": "token-form", "jobs": {"only": {"run": "true", "labels": ["nobody-serves"]}}})
    page = open_page()
    page.goto("/ui")
    page.page.wait_for_selector("#token-form")
    page.page.fill("#token-input", "rota_0123456789abcdef_wrong")
    page.page.click("#token-form button[type=submit]")
    page.page.wait_for_selector("#token-form .banner.error")  # refused, asked again
    page.page.fill("#token-input", tokens["read"])
    page.page.click("#token-form button[type=submit]")
    page.page.wait_for_selector("table.runs tr[data-run]")
    assert "dash-read: read" in page.page.inner_text("#session")
    assert page.page.evaluate("sessionStorage.getItem('rota.token')") == tokens["read"]
    assert page.page.evaluate("document.cookie") == ""
    page.shot("runs")
    assert not page.errors and not page.dialogs


def test_runs_page_filters_pages_and_bookmarks(admin, tokens, open_page):
    wf = f"paged-{uuid.uuid4().hex[:6]}"
    doc = {"name": "paged", "jobs": {"hold": {"run": "true", "labels": ["nobody-serves"]}}}
    assert admin.put(f"/api/workflows/{wf}", content=yaml.safe_dump(doc).encode(),
                     headers={"content-type": "application/yaml"}).status_code == 201
    for i in range(60):
        body = {"tags": {"batch": "odd" if i % 2 else "even"}, "triggered_by": "cron" if i == 7 else "api"}
        assert admin.post(f"/api/workflows/{wf}/runs", json=body).status_code == 201
    page = open_page(tokens["read"])
    page.goto(f"/ui?workflow={wf}")
    page.page.wait_for_selector("table.runs tr[data-run]")
    assert page.page.locator("table.runs tbody tr").count() == 50
    page.page.click("#next-page")
    page.page.wait_for_selector("table.runs tr[data-run]")
    assert "cursor=" in page.page.url and page.page.locator("table.runs tbody tr").count() == 10
    # the filters are the URL's: a form submission, then a bookmark
    page.goto(f"/ui?workflow={wf}")
    page.page.wait_for_selector("table.runs tr[data-run]")
    page.page.fill("#filters [name=tag]", "batch:odd")
    page.page.fill("#filters [name=trigger]", "cron")
    page.page.click("#filters button[type=submit]")
    page.page.wait_for_selector("table.runs tr[data-run]")
    assert "tag=batch%3Aodd" in page.page.url and "trigger=cron" in page.page.url
    assert page.page.locator("table.runs tbody tr").count() == 1
    assert page.page.input_value("#filters [name=tag]") == "batch:odd"
    # a search by a job's name
    page.goto(f"/ui?q={wf}&status=queued")
    page.page.wait_for_selector("table.runs tr[data-run]")
    assert page.page.locator("table.runs tbody tr").count() == 50
    assert not page.errors


# ---- a run, live ---------------------------------------------------------------------


def test_the_graph_changes_colour_by_push_not_polling(admin, tokens, open_page, workers, tmp_path):
    label = f"push-{uuid.uuid4().hex[:6]}"
    go_a, go_b = tmp_path / "a", tmp_path / "b"
    _, run = submit(admin, {"name": "push", "jobs": {
        "a": {"labels": [label], "run": f"{wait_file(go_a)}; echo a done"},
        "b": {"needs": "a", "labels": [label], "run": f"{wait_file(go_b)}; echo b done"},
        "c": {"needs": "a", "run": "true", "labels": ["nobody-serves"]},
    }})
    page = open_page(tokens["submit"])
    page.goto(f"/ui/runs/{run}")
    node(page, "a", "queued")
    page.page.wait_for_selector("body[data-stream=live]")
    mark = len(page.requests)
    workers([label])  # nothing served the job until now
    node(page, "a", "running")
    go_a.touch()
    node(page, "a", "success")
    node(page, "b", "running")
    # Only the event stream (and a ticket, should it have had to reconnect)
    # was asked for while three nodes changed colour: no polling.
    seen = page.paths(mark)
    assert seen == [] or all(p.startswith((f"GET /api/runs/{run}/events/stream?", "POST /api/stream-tickets"))
                             for p in seen), seen
    assert page.page.get_attribute('g.node[data-job="c"]', "data-status") == "queued"
    assert "1 success" in page.page.inner_text("#counts")
    page.shot("run")
    go_b.touch()
    node(page, "b", "success")
    assert page.page.inner_text("#timeline").count("success") >= 2
    assert not page.errors and not page.dialogs


def test_a_live_log_grows_with_a_tab_per_attempt_and_its_colours(admin, tokens, open_page, workers, tmp_path):
    label = f"log-{uuid.uuid4().hex[:6]}"
    first, go = tmp_path / "first", tmp_path / "go"
    script = (f'if [ ! -e "{first}" ]; then touch "{first}"; echo "the first attempt"; exit 3; fi\n'
              "printf '\\033[31mred alert\\033[0m plain \\033[1;32mbold green\\033[0m\\n'\n"
              "echo before the wait\n"
              f"{ROTA} progress 40 halfway\n"
              f"{wait_file(go)}\n"
              "echo after the wait\n")
    _, run = submit(admin, {"name": "logs", "jobs": {"talk": {"labels": [label], "retries": 1, "run": script}}})
    workers([label])
    page = open_page(tokens["read"])
    page.goto(f"/ui/runs/{run}#job=talk")
    page.page.wait_for_selector("#log .line >> text=before the wait", timeout=30_000)
    assert page.page.inner_text("#log span.fg-1") == "red alert"
    assert "sgr-b" in page.page.get_attribute("#log span.fg-2", "class")
    assert page.page.locator(".tabs .tab").all_inner_texts() == ["attempt 0", "attempt 1"]
    assert page.page.get_attribute('.tab[data-attempt="1"]', "aria-selected") == "true"
    # the job's progress reaches its panel by push; its log keeps following, not reopened
    page.page.wait_for_selector('#job progress[value="40"]', timeout=30_000)
    assert "halfway" in page.page.inner_text("#job-top")
    assert len([p for p in page.paths() if "/jobs/talk/logs/stream" in p]) == 1
    go.touch()
    page.page.wait_for_selector("#log .line >> text=after the wait", timeout=30_000)  # it grew
    page.page.wait_for_selector(".log-status >> text=ended: success", timeout=30_000)
    page.shot("run-log")
    page.page.click('.tab[data-attempt="0"]')
    page.page.wait_for_selector("#log .line >> text=the first attempt")
    assert "before the wait" not in page.page.inner_text("#log")
    assert not page.errors


def test_a_long_log_is_read_tail_first_and_paged_back(admin, tokens, open_page):
    label = f"long-{uuid.uuid4().hex[:6]}"
    wf, run = submit(admin, {"name": "long log", "jobs": {"talk": {"labels": [label], "run": "true"}}})
    lease = admin.post("/api/jobs/claim", json={"worker_id": f"w-{label}", "labels": [label]}).json()["lease"]
    per_chunk, chunks, n = 100, 300, 0  # 30,000 numbered lines, about 3 MB
    for start in range(0, chunks, 100):
        batch = []
        for seq in range(start, start + 100):
            text = "".join(f"line {n + i:05d} " + "x" * 80 + "\n" for i in range(per_chunk))
            n += per_chunk
            batch.append({"workflow_id": wf, "job_id": "talk", "sequence": seq, "data": text, "timestamp_ms": seq})
        resp = admin.post(f"/api/jobs/{lease['lease_id']}/logs", json={"chunks": batch})
        assert resp.status_code == 200, resp.text
    page = open_page(tokens["read"])
    page.goto(f"/ui/runs/{run}#job=talk")
    page.page.wait_for_selector(f"#log .line >> text=line {n - 1:05d}")

    def shown() -> list[int]:
        return [int(x.split()[1]) for x in page.page.inner_text("#log").splitlines() if x.startswith("line ")]

    first = shown()
    assert first[-1] == n - 1 and first[0] > 0  # the tail, not the whole log
    assert first == list(range(first[0], n))  # each line once, in order
    page.page.click(".log-head button >> text=Load earlier")
    wait_for(lambda: shown()[0] < first[0], "earlier lines")
    again = shown()
    assert again == list(range(again[0], n))
    # the stream goes on from the tail: a new chunk arrives once
    resp = admin.post(f"/api/jobs/{lease['lease_id']}/logs", json={"chunks": [
        {"workflow_id": wf, "job_id": "talk", "sequence": chunks, "data": "line 99999 late\n", "timestamp_ms": 1}]})
    assert resp.status_code == 200
    page.page.wait_for_selector("#log .line >> text=line 99999 late")
    assert page.page.inner_text("#log").count("line 99999") == 1
    page.shot("run-long-log")
    assert not page.errors


def test_a_gate_is_approved_from_the_page(admin, tokens, open_page, workers):
    label = f"gate-{uuid.uuid4().hex[:6]}"
    _, run = submit(admin, {"name": "release", "jobs": {
        "build": {"labels": [label], "run": "echo built"},
        "approval": {"needs": "build", "wait": {"event": f"release-{label}"}},
        "deploy": {"needs": "approval", "labels": [label], "run": "echo deployed"},
    }})
    workers([label])
    reader = open_page(tokens["read"])
    reader.goto(f"/ui/runs/{run}#job=approval")
    node(reader, "approval", "waiting")
    reader.page.wait_for_selector("#job h2 >> text=approval")
    assert reader.page.locator("#approve").count() == 0  # a read token sees no action
    page = open_page(tokens["submit"])
    page.goto(f"/ui/runs/{run}#job=approval")
    node(page, "approval", "waiting")
    page.page.click("#approve")
    page.page.wait_for_selector("dialog#confirm[open]")
    page.shot("run-approve")
    page.page.click("#confirm-ok")
    node(page, "approval", "success")
    node(page, "deploy", "success")
    page.page.wait_for_selector("#run-status >> text=success", timeout=30_000)
    assert not page.dialogs and not page.errors


def test_a_dead_letter_is_replayed_and_another_dismissed(admin, tokens, open_page, workers, tmp_path):
    label = f"dead-{uuid.uuid4().hex[:6]}"
    tried = tmp_path / "tried"
    wf, run = submit(admin, {"name": "flaky", "jobs": {
        "flaky": {"labels": [label], "run": f'if [ ! -e "{tried}" ]; then touch "{tried}"; exit 1; fi; echo fine'},
        "doomed": {"labels": [label], "run": "exit 2"},
    }})
    workers([label])
    wait_for(lambda: len(admin.get("/api/dead-letters", params={"workflow_id": wf}).json()["items"]) == 2,
             "two dead letters")
    page = open_page(tokens["submit"])
    page.goto(f"/ui/dead-letters?workflow={wf}")
    page.page.wait_for_selector(f'tr[data-dead="{run}:flaky"]')
    assert page.page.locator("[data-dismiss]").count() == 0  # dismissing is an admin's
    page.shot("dead-letters")
    page.page.click(f'[data-replay="{run}:flaky"]')
    page.page.wait_for_selector(".banner >> text=1 retried")
    wait_for(lambda: admin.get(f"/api/runs/{run}/jobs/flaky").json()["status"] == "success", "the replay to succeed")
    page.goto(f"/ui/dead-letters?workflow={wf}")
    page.page.wait_for_selector(f'tr[data-dead="{run}:doomed"]')
    assert page.page.locator(f'tr[data-dead="{run}:flaky"]').count() == 0
    boss = open_page(tokens["admin"])
    boss.goto(f"/ui/dead-letters?workflow={wf}")
    boss.page.click(f'[data-dismiss="{run}:doomed"]')
    boss.page.wait_for_selector("dialog#confirm[open]")
    boss.page.click("#confirm-ok")
    boss.page.wait_for_selector("#dead >> text=No dead letters.")
    assert admin.get("/api/dead-letters", params={"workflow_id": wf}).json()["items"] == []
    assert not page.errors and not boss.errors and not boss.dialogs


# ---- hostile content ---------------------------------------------------------------

PWN = "window.__pwned=1"
HOSTILE = f'<script>{PWN}</script>"><img src=x onerror="{PWN}">'
MARKDOWN = (f"# Report {HOSTILE}\n\n[click me](javascript:{PWN}) <a href=\"javascript:{PWN}\">raw</a>\n\n"
            f"![pixel](http://evil.invalid/p.png) <iframe src=\"javascript:{PWN}\"></iframe>\n\n**fine**\n")


def test_a_hostile_workflow_renders_inert(admin, tokens, open_page, workers, server):
    label = f"evil-{uuid.uuid4().hex[:6]}"
    script = "\n".join([
        f"echo {json.dumps(HOSTILE)}",
        f"printf '%s\\n' {json.dumps('javascript:' + PWN)}",
        f"{ROTA} annotate {json.dumps('verdict=' + HOSTILE)}",
        f"{ROTA} annotate --style error --context evil <<'MARKDOWN'\n{MARKDOWN}MARKDOWN",
        f"echo {json.dumps('out=' + HOSTILE)} >> \"$ROTA_OUTPUT\"",
    ])
    doc = {"name": f"evil {HOSTILE}", "jobs": {
        "evil": {"name": f"job {HOSTILE}", "labels": [label], "steps": [{"name": f"step {HOSTILE}", "run": script}]},
        "after": {"name": f"<img src=x onerror={PWN}>", "needs": "evil", "labels": [label], "run": "exit 1"},
    }}
    resp = admin.post("/api/workflows", content=yaml.safe_dump(doc).encode(),
                      headers={"content-type": "application/yaml"})
    assert resp.status_code == 201, resp.text
    wf = resp.json()["id"]
    run = admin.post(f"/api/workflows/{wf}/runs", json={"tags": {"t": HOSTILE[:200]}, "inputs": {"X": HOSTILE}}).json()["run_id"]
    # a worker's own words are shown too
    assert admin.post("/api/workers/register", json={"worker_id": f"evil-{label}", "labels": [label],
                                                     "host": HOSTILE, "version": "<b>1</b>"}).status_code == 200
    workers([label])
    wait_for(lambda: admin.get(f"/api/runs/{run}").json()["status"] == "failure", "the hostile run to finish")

    page = open_page(tokens["admin"])
    visited = []

    def visit(path: str, ready: str) -> None:
        visited.append(path.split("#")[0])
        page.goto(path)
        page.page.wait_for_selector(ready, timeout=30_000)

    visit("/ui", "table.runs tr[data-run]")
    assert HOSTILE in page.page.inner_text("table.runs")
    visit(f"/ui/runs/{run}#job=evil", "#log .line")
    page.page.wait_for_selector(".note .markdown")
    body = page.page.inner_text("body")
    assert f"job {HOSTILE}" in body and "verdict" in body and "out" in body
    assert HOSTILE in page.page.inner_text("#job")  # annotation and output values, as text
    assert HOSTILE in page.page.inner_text("#log")
    assert f"step {HOSTILE}" in page.page.inner_text("#job")
    assert HOSTILE in page.page.inner_text("#notes h1")  # the heading's text, as text
    assert page.page.inner_text("#notes strong") == "fine"
    assert page.page.locator("#notes a").count() == 0  # the javascript: links stayed text
    page.shot("hostile-run")
    page.page.click('g.node[data-job="after"]')
    page.page.wait_for_selector("#job h2 >> text=<img src=x")
    visit(f"/ui/workflows/{wf}", "#document")
    assert HOSTILE in page.page.inner_text("#document")
    visit("/ui/workflows", "tr[data-workflow]")
    visit("/ui/workers", f'tr[data-worker="evil-{label}"]')
    assert HOSTILE in page.page.inner_text(f'tr[data-worker="evil-{label}"]')
    visit(f"/ui/dead-letters?workflow={wf}", "tr[data-dead]")
    visit("/ui/queues", "#summary")

    assert page.page.evaluate("window.__pwned") is None
    assert page.dialogs == []
    # Nothing the page did not mean to ask for: its pages, its own files, the API.
    for r in page.requests:
        assert r.url.startswith(server.url), r.url
        path = r.url[len(server.url):]
        if r.resource_type == "document":
            assert path.split("#")[0] in visited, path
        elif r.resource_type in ("script", "stylesheet") or path == "/ui/static/favicon.svg":
            assert path.startswith("/ui/static/"), path
        else:
            assert path.startswith(("/api/", "/healthz")), (r.resource_type, path)
    assert not [line for line in page.console if "Content Security Policy" in line], page.console


# ---- workers and queues -----------------------------------------------------------------


def test_workers_and_queues_pages_and_removing_a_dead_worker(admin, tokens, open_page, workers):
    live_label = f"live-{uuid.uuid4().hex[:6]}"
    alone = f"alone-{uuid.uuid4().hex[:6]}"
    live = workers([live_label, "shared"])
    dead = f"dead-{uuid.uuid4().hex[:6]}"
    # registered by the admin token, seen once, gone quiet: offline after its grace (about 6 s)
    assert admin.post("/api/workers/register", json={"worker_id": dead, "labels": ["gpu"], "claim_wait_secs": 0,
                                                     "lease_ttl_secs": 1, "version": "0.9", "host": "box-9"}).status_code == 200
    submit(admin, {"name": "starved", "jobs": {"hungry": {"run": "true", "labels": [alone]}}})
    page = open_page(tokens["read"])
    page.goto("/ui/queues")
    row = page.page.wait_for_selector(f'tr[data-labels="{alone}"]')
    assert "starving" in row.get_attribute("class") and "no live worker" in row.inner_text()
    page.shot("queues")
    page.goto("/ui/workers")
    page.page.wait_for_selector(f'tr[data-worker="{live.worker_id}"]')
    assert live_label in page.page.inner_text(f'tr[data-worker="{live.worker_id}"]')
    assert page.page.locator("[data-remove]").count() == 0  # a read token removes nothing
    page.page.fill("#find", live_label)
    wait_for(lambda: page.page.locator("tbody tr").count() == 1, "the list filtered to one worker")
    wait_for(lambda: any(w["worker_id"] == dead and w["status"] == "offline" for w in admin.get("/api/workers").json()),
             "the quiet worker to show offline")
    boss = open_page(tokens["admin"])
    boss.goto("/ui/workers")
    boss.page.click(f'[data-remove="{dead}"]')
    boss.page.wait_for_selector("dialog#confirm[open]")
    boss.page.click("#confirm-ok")
    boss.page.wait_for_selector(f'tr[data-worker="{dead}"] .badge >> text=stopped')
    boss.page.fill("#find", "")
    boss.shot("workers")
    assert not page.errors and not boss.errors


# ---- a big run ---------------------------------------------------------------------------


def test_a_run_of_a_thousand_jobs_is_drawn_and_usable(admin, tokens, open_page):
    jobs = {f"j{i}": {"run": "true", "labels": ["nobody-serves"], **({"needs": [f"j{i - 10}"]} if i >= 10 else {})}
            for i in range(1000)}
    jobs["j999"]["needs"] = ["j989", "j0", "j500"]
    _, run = submit(admin, {"name": "big", "jobs": jobs})
    page = open_page(tokens["read"])
    page.goto(f"/ui/runs/{run}")
    page.page.wait_for_selector("body[data-stream=live]", timeout=60_000)
    assert page.page.locator("g.node").count() == 1000
    assert page.page.locator("path.edge").count() == 990 + 2
    page.page.click('g.node[data-job="j500"]')
    page.page.wait_for_selector("#job h2 >> text=j500")
    # The layout alone, in this browser: a figure, not an assertion (make bench prints it too).
    took = page.page.evaluate("""async () => {
        const { layout } = await import('/ui/static/dag.js');
        const nodes = [...Array(1000).keys()].map((i) => 'j' + i);
        const edges = nodes.slice(10).map((n, i) => ['j' + i, n]);
        const t = performance.now();
        layout(nodes, edges);
        return performance.now() - t;
    }""")
    print(f"\nDAG layout of 1,000 jobs in chromium: {took:.0f} ms")
    page.shot("run-1000")
    assert not page.errors


# ---- auth off, and what the log keeps ---------------------------------------------------------


def test_with_auth_off_a_banner_says_so(browser):
    with ServerProcess(ROTA_AUTH="off") as open_server:
        page = browser.page(open_server.url)
        try:
            page.goto("/ui")
            page.page.wait_for_selector("#auth-off")
            assert "Authentication is off" in page.page.inner_text("#auth-off")
            page.page.wait_for_selector("#runs >> text=No runs match.")
            assert page.page.locator("#token-form").count() == 0
            assert "auth off" in page.page.inner_text("#session")
        finally:
            page.close()


def test_no_stream_ticket_reaches_the_server_log(server):
    """Last in the module: every stream above was opened with a ticket."""
    log = server.output()
    assert "/events/stream" in log and "/logs/stream" in log  # the access log saw them
    assert "ticket=" not in log and "rots_" not in log
