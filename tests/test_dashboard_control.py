"""The dashboard's run control in a real browser (headless chromium) against
a real server process with auth on: schedules listed with their next fire
and last run, paused and resumed from the schedules, workflows and workflow
pages; the Run form built from a workflow's typed dispatch inputs, refusing
what the server refuses (its 422 shown beside the input it names) and
starting a run later; delayed runs shown, rescheduled and started now;
expired runs shown and restarted with overrides. Names, descriptions and
options a submitter wrote are hostile and shown as text. The fixtures are
tests/dashboard_kit.py's; the server ticks its scheduler every 0.2 s."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import pytest

from tests import dashboard_kit as kit
from tests.browser import require_browser, wait_for
from tests.dashboard_kit import node

pytestmark = pytest.mark.slow
require_browser()
# The fixtures used here: one server and one browser for the module.
server, admin, tokens, browser, open_page, workers = (
    kit.server, kit.admin, kit.tokens, kit.browser, kit.open_page, kit.workers)

SERVER_ENV = {"SCHEDULE_INTERVAL_SECS": "0.2"}
YAML = {"content-type": "application/yaml"}
# What encodeURIComponent leaves as it is.
URI_SAFE = "-_.!~*'()"
PWN = "window.__pwned=1"
HOSTILE = f'<script>{PWN}</script>"><img src=x onerror="{PWN}">'


def put(admin, wf: str, doc: str) -> None:
    resp = admin.put(f"/api/workflows/{wf}", content=doc.encode(), headers=YAML)
    assert resp.status_code in (200, 201), resp.text


def quoted(text: str) -> str:
    """A YAML double-quoted scalar."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def inert(page) -> None:
    assert page.page.evaluate("window.__pwned") is None
    assert not page.dialogs and not page.errors


# ---- schedules -------------------------------------------------------------------------


@pytest.fixture
def scheduled(admin):
    """A workflow with a hostile name and two schedules: one firing every two
    seconds (until a test pauses it) and one at 03:00 in Berlin."""
    wf = f"sched-{uuid.uuid4().hex[:6]}"
    put(admin, wf, f"name: {quoted('nightly ' + HOSTILE)}\n"
                   "on:\n  schedule:\n"
                   "    - {cron: '*/2 * * * * *', catch-up: none}\n"
                   "    - {cron: '0 3 * * *', timezone: Europe/Berlin, catch-up: all, overlap: skip}\n"
                   "jobs:\n  a: {run: 'true', labels: [nobody-serves]}\n")
    wait_for(lambda: admin.get(f"/api/schedules/{wf}:0").json()["last_run_id"], "the first tick's run")
    yield wf
    for sid in (f"{wf}:0", f"{wf}:1"):  # quiet for the tests after (its queued runs keep it from deletion)
        admin.post(f"/api/schedules/{sid}/pause")


def test_the_schedules_page_lists_them_and_pauses_and_resumes_one(admin, tokens, open_page, scheduled):
    wf = scheduled
    reader = open_page(tokens["read"])
    reader.goto(f"/ui/schedules?workflow={wf}")
    row = reader.page.wait_for_selector(f'tr[data-schedule="{wf}:1"]')
    text = row.inner_text()
    assert "0 3 * * *" in text and "Europe/Berlin" in text and "all" in text and "skip" in text
    assert f"nightly {HOSTILE}" in text  # the workflow's name, as text
    assert "never fired" in text and "active" in text
    first = reader.page.inner_text(f'tr[data-schedule="{wf}:0"]')
    assert "*/2 * * * * *" in first and "never fired" not in first  # its last run is linked
    assert reader.page.locator("[data-schedule-action]").count() == 0  # a read token changes nothing
    assert reader.page.input_value("#filters [name=workflow]") == wf
    inert(reader)

    page = open_page(tokens["submit"])
    page.goto(f"/ui/schedules?workflow={wf}")
    page.page.click(f'tr[data-schedule="{wf}:0"] [data-schedule-action=pause]')
    page.page.wait_for_selector(f'tr[data-schedule="{wf}:0"] .schedule-status >> text=paused')
    assert admin.get(f"/api/schedules/{wf}:0").json()["paused"] is True
    assert page.page.inner_text(f'tr[data-schedule="{wf}:0"] .next-fire') == "paused"
    page.page.click(f'tr[data-schedule="{wf}:1"] [data-schedule-action=pause]')
    page.page.wait_for_selector(f'tr[data-schedule="{wf}:1"] [data-schedule-action=resume]')
    page.page.click(f'tr[data-schedule="{wf}:1"] [data-schedule-action=resume]')
    page.page.wait_for_selector(f'tr[data-schedule="{wf}:1"] .schedule-status >> text=active')
    assert admin.get(f"/api/schedules/{wf}:1").json()["paused"] is False
    page.shot("schedules")
    # the whole list, unfiltered, has it too (the navigation names the page)
    page.goto("/ui/schedules")
    page.page.wait_for_selector(f'tr[data-schedule="{wf}:1"]')
    assert page.page.get_attribute('.nav a[aria-current="page"]', "href") == "/ui/schedules"
    inert(page)


def test_a_workflows_schedules_show_beside_it_and_on_its_page(admin, tokens, open_page, scheduled):
    wf = scheduled
    page = open_page(tokens["submit"])
    page.goto("/ui/workflows")
    line = page.page.wait_for_selector(f'tr[data-workflow="{wf}"] .schedule-line[data-schedule="{wf}:1"]')
    assert "0 3 * * *" in line.inner_text() and "Europe/Berlin" in line.inner_text()
    assert "catch-up all" in line.inner_text()
    page.page.click(f'tr[data-workflow="{wf}"] [data-schedule="{wf}:0"] [data-schedule-action=pause]')
    page.page.wait_for_selector(f'tr[data-workflow="{wf}"] [data-schedule="{wf}:0"] [data-schedule-action=resume]')
    assert admin.get(f"/api/schedules/{wf}:0").json()["paused"] is True
    assert f"nightly {HOSTILE}" in page.page.inner_text(f'tr[data-workflow="{wf}"]')

    page.goto(f"/ui/workflows/{wf}")
    page.page.wait_for_selector(f'#workflow-schedules tr[data-schedule="{wf}:0"]')
    assert "paused" in page.page.inner_text(f'#workflow-schedules tr[data-schedule="{wf}:0"] .schedule-status')
    page.page.click(f'#workflow-schedules tr[data-schedule="{wf}:0"] [data-schedule-action=resume]')
    page.page.wait_for_selector(f'#workflow-schedules tr[data-schedule="{wf}:0"] .schedule-status >> text=active')
    admin.post(f"/api/schedules/{wf}:0/pause")  # no more ticks for the others
    page.shot("workflow-schedules")
    # a cron run's page says which schedule started it, and for which tick
    run = admin.get(f"/api/schedules/{wf}:0").json()["last_run_id"]
    page.goto(f"/ui/runs/{run}")
    page.page.wait_for_selector("#schedule-link")
    assert page.page.inner_text("#schedule-link") == f"{wf}:0"
    assert page.page.get_attribute("#schedule-link", "href") == f"/ui/schedules?workflow={wf}"
    assert page.page.inner_text("#scheduled-at")
    assert "cron" in page.page.inner_text("#run-head")
    inert(page)


# ---- the Run form --------------------------------------------------------------------------


def deploy_doc(options: str) -> str:
    return ("name: deploy\non:\n  workflow_dispatch:\n    inputs:\n"
            f"      target: {{type: choice, options: [{options}], default: staging, description: where to}}\n"
            "      replicas: {type: number, default: 2}\n"
            "      dry_run: {type: boolean, default: true}\n"
            f"      version: {{type: string, required: true, description: {quoted(HOSTILE)}}}\n"
            "      region: {type: environment}\n"
            f"      note: {{default: {quoted(HOSTILE)}}}\n"
            "jobs:\n  ship: {run: 'true', labels: [nobody-serves]}\n")


def test_the_run_form_is_built_from_the_typed_inputs_and_refuses_as_the_server_does(admin, tokens, open_page):
    wf = f"deploy-{uuid.uuid4().hex[:6]}"
    put(admin, wf, deploy_doc(f"staging, production, {quoted(HOSTILE)}"))
    page = open_page(tokens["submit"])
    page.goto(f"/ui/workflows/{wf}")
    form = "#start-run"
    page.page.wait_for_selector(f'{form} [data-field="inputs.version"]')
    # one control per input, by its type, with its default
    assert page.page.locator(f'{form} select[data-field="inputs.target"] option').all_inner_texts() == [
        "staging", "production", HOSTILE]
    assert page.page.input_value(f'{form} [data-field="inputs.target"]') == "staging"
    assert page.page.is_checked(f'{form} input[type=checkbox][data-field="inputs.dry_run"]')
    assert page.page.input_value(f'{form} [data-field="inputs.replicas"]') == "2"
    assert page.page.input_value(f'{form} [data-field="inputs.note"]') == HOSTILE
    version = page.page.locator(f'{form} .field[data-for="inputs.version"]')
    assert HOSTILE in version.inner_text() and "*" in version.inner_text()  # its description, and required
    assert page.page.locator(f"{form} #add-input").count() == 0  # declared inputs only

    # refused in the page, as the server would: nothing sent
    mark = len(page.requests)
    page.page.fill(f'{form} [data-field="inputs.replicas"]', "many")
    page.page.click("#run-submit")
    page.page.wait_for_selector(f'{form} .field.invalid[data-for="inputs.replicas"]')
    errors = page.page.locator(f"{form} .field-error:visible").all_inner_texts()
    assert "number input must be a number (got 'many')" in errors
    assert any(e.startswith("required (") and HOSTILE in e for e in errors)
    assert not [p for p in page.paths(mark) if p.startswith("POST ")]

    # what the page cannot know: the definition changed under the open form
    put(admin, wf, deploy_doc("staging, qa"))
    page.page.fill(f'{form} [data-field="inputs.replicas"]', "5")
    page.page.fill(f'{form} [data-field="inputs.version"]', "v1.2")
    page.page.select_option(f'{form} [data-field="inputs.target"]', "production")
    page.page.click("#run-submit")
    refusal = page.page.wait_for_selector(f'{form} .field.invalid[data-for="inputs.target"] .field-error')
    assert "must be one of staging, qa (got 'production')" in refusal.inner_text()
    assert "422 invalid_input" in refusal.inner_text()
    assert page.page.locator(f"{form} .field.invalid").count() == 1
    page.shot("workflow-run-form")

    # a good one, an hour from now
    page.goto(f"/ui/workflows/{wf}")
    page.page.wait_for_selector(f'{form} [data-field="inputs.version"]')
    page.page.fill(f'{form} [data-field="inputs.replicas"]', "2.5")
    page.page.fill(f'{form} [data-field="inputs.version"]', "v2")
    page.page.uncheck(f'{form} [data-field="inputs.dry_run"]')
    page.page.fill(f"{form} [name=delay]", "1h")
    page.page.click("#run-submit")
    page.page.wait_for_url("**/ui/runs/**")
    run = page.page.url.rsplit("/", 1)[1].split("#")[0]
    page.page.wait_for_selector("#run-status >> text=delayed")
    got = admin.get(f"/api/runs/{run}").json()
    assert got["inputs"] == {"target": "staging", "replicas": 2.5, "dry_run": False, "version": "v2", "region": "",
                             "note": HOSTILE}
    assert got["status"] == "delayed" and got["scheduled_at"] > got["created_at"] + 3000_000
    assert got["triggered_by"] == "dashboard"
    inert(page)


def test_a_workflow_without_declared_inputs_takes_any(admin, tokens, open_page):
    wf = f"free-{uuid.uuid4().hex[:6]}"
    put(admin, wf, "name: free\njobs:\n  a: {run: 'true', labels: [nobody-serves]}\n")
    page = open_page(tokens["submit"])
    page.goto(f"/ui/workflows/{wf}")
    page.page.click("#add-input")
    page.page.fill("#start-run .input-row [name=key]", "COLOUR")
    page.page.fill("#start-run .input-row [name=value]", "blue")
    page.page.fill("#start-run [name=delay]", "10m")
    page.page.fill("#start-run [name=start_at]", "2030-01-01T10:00")
    page.page.click("#run-submit")
    page.page.wait_for_selector('#start-run .field.invalid[data-for="delay"] >> text=not both')
    page.page.fill("#start-run [name=start_at]", "")
    page.page.fill("#start-run [name=delay]", "soon")
    page.page.click("#run-submit")
    page.page.wait_for_selector('#start-run .field.invalid[data-for="delay"] >> text=got \'soon\'')
    page.page.fill("#start-run [name=delay]", "")
    page.page.click("#run-submit")
    page.page.wait_for_url("**/ui/runs/**")
    run = page.page.url.rsplit("/", 1)[1]
    assert admin.get(f"/api/runs/{run}").json()["inputs"] == {"COLOUR": "blue"}
    inert(page)


# ---- delayed, expired, rescheduled, restarted -----------------------------------------------


def start(admin, wf: str, **body) -> dict:
    resp = admin.post(f"/api/workflows/{wf}/runs", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_a_delayed_run_is_shown_rescheduled_and_started_now(admin, tokens, open_page):
    wf = f"later-{uuid.uuid4().hex[:6]}"
    put(admin, wf, "name: later\njobs:\n  a: {run: 'true', labels: [nobody-serves]}\n")
    run = start(admin, wf, delay="1h", expires_in="2h")["run_id"]
    reader = open_page(tokens["read"])
    reader.goto(f"/ui?workflow={wf}&status=delayed")
    row = reader.page.wait_for_selector(f'tr[data-run="{run}"]')
    assert "starts " in row.inner_text()
    assert "st-delayed" in reader.page.get_attribute(f'tr[data-run="{run}"] .badge', "class")
    assert reader.page.input_value("#filters [name=status]") == "delayed"
    reader.goto(f"/ui/runs/{run}")
    reader.page.wait_for_selector("#expires-at")
    assert reader.page.inner_text("#scheduled-at") and reader.page.locator("#reschedule-run").count() == 0

    page = open_page(tokens["submit"])
    page.goto(f"/ui/runs/{run}")
    page.page.click("#reschedule-run")
    page.page.wait_for_selector("#reschedule-form")
    page.page.click("#reschedule-submit")  # neither a time nor a delay
    page.page.wait_for_selector('#reschedule-form .field.invalid[data-for="scheduled_at"]')
    page.page.fill("#reschedule-form [name=delay]", "3h")  # after the run expires: the server says so
    page.page.click("#reschedule-submit")
    refusal = page.page.wait_for_selector('#reschedule-form .field.invalid[data-for="scheduled_at"] >> text=expires')
    assert "422" in refusal.inner_text()
    before = admin.get(f"/api/runs/{run}").json()["scheduled_at"]
    page.page.fill("#reschedule-form [name=delay]", "90m")
    page.page.click("#reschedule-submit")
    wait_for(lambda: admin.get(f"/api/runs/{run}").json()["scheduled_at"] > before + 20 * 60_000, "the new start")
    page.page.wait_for_selector("#reschedule-form", state="detached")
    page.shot("run-delayed")
    page.page.click("#reschedule-run")
    page.page.click("#start-now")
    page.page.wait_for_selector("#run-status >> text=queued")
    page.page.wait_for_selector("#reschedule-run", state="detached")  # its actions follow its status
    assert admin.get(f"/api/runs/{run}").json()["status"] == "queued"
    inert(page)
    inert(reader)


def test_an_expired_run_is_shown_and_restarted_with_a_label_override(admin, tokens, open_page, workers):
    wf = f"expiring-{uuid.uuid4().hex[:6]}"
    label = f"restart-{uuid.uuid4().hex[:6]}"
    put(admin, wf, "name: expiring\njobs:\n  a: {run: 'echo restarted', labels: [nobody-serves]}\n")
    run = start(admin, wf, expires_in="1s", overrides={"priority": 5})["run_id"]
    wait_for(lambda: admin.get(f"/api/runs/{run}").json()["status"] == "expired", "the run to expire")
    page = open_page(tokens["submit"])
    page.goto(f"/ui?workflow={wf}&status=expired")
    page.page.wait_for_selector(f'tr[data-run="{run}"] .badge.st-expired')
    colours = page.page.evaluate("""() => ['expired', 'cancelled', 'delayed'].map((s) => {
        const b = document.createElement('span'); b.className = 'badge st-' + s; document.body.appendChild(b);
        const c = getComputedStyle(b).backgroundColor; b.remove(); return c; })""")
    assert len(set(colours)) == 3, colours  # each status its own colour
    page.goto(f"/ui/runs/{run}")
    page.page.wait_for_selector("#overrides")
    assert "priority" in page.page.inner_text("#overrides")
    page.page.click("#restart-run")
    page.page.fill("#restart-form [name=labels]", label)
    page.page.fill("#restart-form [name=max_attempts]", "0")
    page.page.click("#restart-submit")
    page.page.wait_for_selector('#restart-form .field.invalid[data-for="overrides.max_attempts"] >> text=1 to 101')
    page.page.fill("#restart-form [name=max_attempts]", "2")
    page.page.click("#restart-submit")
    page.page.wait_for_url(lambda url: "/ui/runs/" in url and run not in url)
    again = page.page.url.rsplit("/", 1)[1]
    page.page.wait_for_selector("#restarted-from")
    assert page.page.inner_text("#restarted-from") == run
    overrides = page.page.inner_text("#overrides")
    assert label in overrides and "max_attempts" in overrides and "priority" in overrides
    got = admin.get(f"/api/runs/{again}").json()
    assert got["restarted_from"] == run and got["triggered_by"] == "restart"
    assert got["overrides"] == {"labels": [label], "max_attempts": 2, "priority": 5}
    workers([label])  # the override is what a worker is asked for
    node(page, "a", "success")
    page.page.wait_for_selector("#run-status >> text=success", timeout=30_000)
    page.shot("run-restarted")
    inert(page)


def test_an_open_form_outlives_the_runs_history_arriving(admin, tokens, open_page):
    """The run page follows its events from the first: their history comes
    in after the page drew the run as it is now, and must not set the run
    back to an earlier status (which closed the Restart form being typed
    into; a slow stream made the test above fail)."""
    wf = f"history-{uuid.uuid4().hex[:6]}"
    put(admin, wf, "name: history\njobs:\n  a: {run: 'true', labels: [nobody-serves]}\n")
    run = start(admin, wf, expires_in="1s")["run_id"]
    wait_for(lambda: admin.get(f"/api/runs/{run}").json()["status"] == "expired", "the run to expire")
    page = open_page(tokens["submit"])
    held = []
    page.page.route("**/events/stream*", lambda route: held.append(route))
    page.goto(f"/ui/runs/{run}")
    page.page.click("#restart-run")
    page.page.fill("#restart-form [name=labels]", "typed-before")
    # (the sync API runs a route's handler only inside a call into the page)
    wait_for(lambda: page.page.evaluate("1") and held, "the page to open its event stream")
    for route in held:
        route.continue_()
    page.page.unroute("**/events/stream*")
    page.page.wait_for_selector("#timeline .event.type-run .badge.st-expired")
    assert page.page.input_value("#restart-form [name=labels]") == "typed-before"
    assert page.page.inner_text("#run-status") == "expired"
    inert(page)


def test_the_run_control_is_the_submit_scopes(admin, tokens, open_page):
    """A read token sees the facts and no form: no Restart, no Reschedule."""
    wf = f"ro-{uuid.uuid4().hex[:6]}"
    put(admin, wf, "name: ro\njobs:\n  a: {run: 'true', labels: [nobody-serves]}\n")
    run = start(admin, wf)["run_id"]
    assert admin.post(f"/api/runs/{run}/cancel").status_code in (200, 202)
    page = open_page(tokens["read"])
    page.goto(f"/ui/runs/{run}")
    page.page.wait_for_selector("#run-status >> text=cancelled")
    assert page.page.locator("#restart-run, #reschedule-run, #retry-run, #cancel-run").count() == 0
    page.goto(f"/ui/workflows/{wf}")
    page.page.wait_for_selector("#document")
    assert page.page.locator("#start-run").count() == 0
    inert(page)


# ---- pausing labels, runs and workflows; concurrency groups ----------------------------------


def test_a_label_is_paused_and_resumed_from_the_queues_page(admin, tokens, open_page, workers):
    label = f"drain-{uuid.uuid4().hex[:6]}"
    wf = f"drain-{uuid.uuid4().hex[:6]}"
    put(admin, wf, f"name: drain\njobs:\n  a: {{run: 'true', labels: [{label}]}}\n")
    run = start(admin, wf)["run_id"]
    reader = open_page(tokens["read"])
    reader.goto("/ui/queues")
    reader.page.wait_for_selector(f'tr[data-labels="{label}"]')
    assert reader.page.locator("[data-label-action], #pause-label").count() == 0  # pausing a label is an admin's

    boss = open_page(tokens["admin"])
    boss.goto("/ui/queues")
    boss.page.click(f'tr[data-labels="{label}"] [data-label-action=pause]')
    boss.page.wait_for_selector("dialog#confirm[open]")
    boss.page.click("#confirm-ok")
    boss.page.wait_for_selector(f'tr[data-labels="{label}"] .queue-paused')
    boss.page.wait_for_selector(f'tr[data-paused-label="{label}"]')
    assert boss.page.inner_text(f'tr[data-paused-label="{label}"] td:nth-child(3)') == "1"  # one job held
    assert "paused" in boss.page.inner_text(f'tr[data-labels="{label}"]')
    assert "starving" not in (boss.page.get_attribute(f'tr[data-labels="{label}"]', "class") or "")
    boss.shot("queues-paused")
    # a worker offering the label takes nothing from it, and says which of its labels is paused
    worker = workers([label])
    boss.goto("/ui/workers")
    boss.page.wait_for_selector(f'tr[data-worker="{worker.worker_id}"] >> text={label} (paused)')
    page = open_page(tokens["read"])
    page.goto(f"/ui/runs/{run}#job=a")
    page.page.wait_for_selector(f"#job >> text=label {label} paused")
    assert admin.get(f"/api/runs/{run}/jobs/a").json()["status"] == "queued"
    boss.goto("/ui/queues")
    boss.page.click(f'tr[data-paused-label="{label}"] [data-label-action=resume]')
    boss.page.wait_for_selector(".banner >> text=resumed")
    wait_for(lambda: admin.get(f"/api/runs/{run}").json()["status"] == "success", "the job to be taken")
    boss.page.wait_for_selector(f'tr[data-paused-label="{label}"]', state="detached")
    # one with no queue at all may be paused ahead (and is resumed for the tests after)
    spare = f"spare-{uuid.uuid4().hex[:6]}"
    boss.page.fill("#pause-label [name=label]", spare)
    boss.page.click("#pause-label button")
    boss.page.click("#confirm-ok")
    boss.page.wait_for_selector(f'tr[data-paused-label="{spare}"]')
    assert admin.post(f"/api/labels/{spare}/resume").json()["changed"] is True
    inert(boss)
    inert(reader)


def test_a_run_is_paused_and_resumed_from_its_page(admin, tokens, open_page, workers):
    label = f"hold-{uuid.uuid4().hex[:6]}"
    wf = f"hold-{uuid.uuid4().hex[:6]}"
    put(admin, wf, f"name: hold\njobs:\n  a: {{run: 'true', labels: [{label}]}}\n"
                   f"  b: {{run: 'true', needs: a, labels: [{label}]}}\n")
    run = start(admin, wf)["run_id"]
    page = open_page(tokens["submit"])
    page.goto(f"/ui/runs/{run}#job=a")
    page.page.wait_for_selector("body[data-stream=live]")
    page.page.click("#pause-run")
    page.page.wait_for_selector("#run-paused")  # the answer, and the run's own `pause` event
    assert admin.get(f"/api/runs/{run}").json()["paused"] is True
    page.page.wait_for_selector("#job >> text=its run is paused")
    workers([label])  # a worker for it: the paused run gives it nothing
    page.page.wait_for_selector("#timeline >> text=pause")
    assert admin.get(f"/api/runs/{run}/jobs/a").json()["status"] == "queued"
    page.shot("run-paused")
    page.page.click("#resume-run")
    page.page.wait_for_selector("#run-paused", state="detached")
    node(page, "b", "success")
    page.page.wait_for_selector("#run-status >> text=success", timeout=30_000)
    page.page.wait_for_selector("#pause-run", state="detached")  # a finished run holds nothing
    inert(page)


def test_a_workflow_is_paused_with_new_runs_queued_then_resumed(admin, tokens, open_page):
    wf = f"wfhold-{uuid.uuid4().hex[:6]}"
    put(admin, wf, "name: wfhold\njobs:\n  a: {run: 'true', labels: [nobody-serves]}\n")
    reader = open_page(tokens["read"])
    reader.goto(f"/ui/workflows/{wf}")
    reader.page.wait_for_selector("#document")
    assert reader.page.locator("#pause-workflow, #resume-workflow").count() == 0
    page = open_page(tokens["submit"])
    page.goto(f"/ui/workflows/{wf}")
    page.page.click("#pause-workflow")
    page.page.wait_for_selector("dialog#pause-dialog[open]")
    page.page.check("#pause-dialog input[value=skip]")
    page.page.click("#pause-dialog button[value=cancel]")  # changed its mind: nothing paused
    assert admin.get(f"/api/workflows/{wf}").json()["paused"] is None
    page.page.click("#pause-workflow")
    page.page.check("#pause-dialog input[value=queue]")
    page.shot("workflow-pause")
    page.page.click("#pause-ok")
    page.page.wait_for_selector("#workflow-paused")
    assert "wait for it to resume" in page.page.inner_text("#paused-how")
    assert admin.get(f"/api/workflows/{wf}").json()["paused"] == "queue"
    run = start(admin, wf)["run_id"]  # it waits for the workflow
    page.goto("/ui/workflows")
    page.page.wait_for_selector(f'tr[data-workflow="{wf}"] .workflow-paused >> text=paused (queue)')
    page.goto(f"/ui/runs/{run}")
    page.page.wait_for_selector("#run-waiting >> text=its workflow to be resumed")
    page.goto(f"/ui?workflow={wf}")
    page.page.wait_for_selector(f'tr[data-run="{run}"] >> text=waiting for its paused workflow')
    page.goto(f"/ui/workflows/{wf}")
    page.page.click("#resume-workflow")
    page.page.wait_for_selector(".banner >> text=1 run(s) that waited for it started")
    page.page.wait_for_selector("#pause-workflow")
    assert admin.get(f"/api/runs/{run}").json()["waiting_for_workflow"] is False
    inert(page)
    inert(reader)


def test_concurrency_groups_show_who_runs_and_who_waits_in_order(admin, tokens, open_page):
    wf = f"grouped-{uuid.uuid4().hex[:6]}"
    label = f"grouped-{uuid.uuid4().hex[:6]}"  # nobody serves it: the test claims by hand
    put(admin, wf, "name: grouped\nconcurrency: {group: 'g-${{ inputs.where }}', queue: max}\n"
                   f"jobs:\n  a: {{run: 'true', labels: [{label}]}}\n"
                   f"  b: {{run: 'true', needs: a, labels: [{label}], concurrency: 'jobs-${{{{ inputs.where }}}}'}}\n")
    group = f"g-{HOSTILE}"
    runs = [start(admin, wf, inputs={"where": HOSTILE})["run_id"] for _ in range(3)]
    assert admin.get(f"/api/runs/{runs[2]}").json()["waiting_for_group"] == group
    page = open_page(tokens["read"])
    page.goto(f"/ui/groups?group={group}")
    row = page.page.wait_for_selector("tr[data-group]")
    assert page.page.inner_text("tr[data-group] .group-name") == group  # a hostile name, as text
    assert [m.get_attribute("data-member") for m in row.query_selector_all(".members.running a")] == [runs[0]]
    assert [m.get_attribute("data-member") for m in row.query_selector_all(".members.waiting a")] == runs[1:]
    page.shot("groups")
    page.goto(f"/ui/runs/{runs[2]}")
    page.page.wait_for_selector("#run-place >> text=2nd of 2 waiting (limit 1, 1 running)")
    assert page.page.inner_text("#run-group") == group
    assert page.page.get_attribute("#run-group", "href") == f"/ui/groups?group={quote(group, safe=URI_SAFE)}"
    page.goto(f"/ui?workflow={wf}")
    page.page.wait_for_selector(f'tr[data-run="{runs[1]}"] >> text=waiting for group')
    # a job-level group: the second run's job waits for the first's
    for run in runs:
        assert admin.post(f"/api/runs/{run}/cancel").status_code in (200, 202)
    first, second = (start(admin, wf, inputs={"where": "solo"}, concurrency_key=f"k-{uuid.uuid4().hex[:6]}")["run_id"]
                     for _ in range(2))
    leases = {}
    for n in range(2):  # take `a` of each: `b` then wants its group
        lease = admin.post("/api/jobs/claim", json={"worker_id": f"w-{label}-{n}", "labels": [label]}).json()["lease"]
        leases[lease["run_id"]] = lease["lease_id"]
    for run in (first, second):  # the first's `b` takes the place, the second's waits
        assert admin.post(f"/api/jobs/{leases[run]}/complete", json={}).status_code == 200
    wait_for(lambda: admin.get(f"/api/runs/{second}/jobs/b").json()["waiting_for_group"] == "jobs-solo",
             "the second run's b to wait for its group")
    page.goto(f"/ui/runs/{second}#job=b")
    page.page.wait_for_selector("#job-place >> text=1st of 1 waiting (limit 1, 1 running)")
    assert "jobs-solo" in page.page.inner_text("#job")
    live = open_page(tokens["submit"])
    live.goto(f"/ui/runs/{second}#job=b")
    live.page.wait_for_selector("#job-place >> text=1st of 1 waiting")
    assert admin.post(f"/api/runs/{first}/cancel").status_code in (200, 202)  # its place is given up
    # the group's `admitted` event, pushed (the claimers above count as live workers for the label)
    live.page.wait_for_selector("#job >> text=next in line for a worker")
    inert(page)
    inert(live)


def test_a_form_being_filled_in_survives_the_runs_head_being_drawn_again(admin, tokens, open_page):
    """Someone pauses the run while the operator types a new start: the
    run's `pause` event redraws its head, and what was typed stays."""
    wf = f"typing-{uuid.uuid4().hex[:6]}"
    put(admin, wf, "name: typing\njobs:\n  a: {run: 'true', labels: [nobody-serves]}\n")
    run = start(admin, wf, delay="1h")["run_id"]
    page = open_page(tokens["submit"])
    page.goto(f"/ui/runs/{run}")
    page.page.wait_for_selector("body[data-stream=live]")
    page.page.click("#reschedule-run")
    page.page.fill("#reschedule-form [name=delay]", "90m")
    assert admin.post(f"/api/runs/{run}/pause").json()["changed"] is True
    page.page.wait_for_selector("#run-paused")  # the head, drawn again from the event
    assert page.page.input_value("#reschedule-form [name=delay]") == "90m"
    page.page.click("#reschedule-submit")
    page.page.wait_for_selector("#reschedule-form", state="detached")
    got = admin.get(f"/api/runs/{run}").json()
    assert got["paused"] is True and got["scheduled_at"] > got["created_at"] + 80 * 60_000
    inert(page)
