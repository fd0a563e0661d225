"""What a job writes reaches an operator's terminal through `rota` inert:
every printer of job-written text (logs, --follow and --wait lines, status
and its details, dead letters, listings, errors, --json) fed the user
trial's junk shows none of it raw (issue: the trial report, item 1)."""

from __future__ import annotations

import io
import json
import re

import httpx
import pytest
import yaml

from tests.procs import WorkerProc
from tests.procs import rota as rota_proc
from tests.test_runs import claim, finish, log, put, start
from worker.cli import main as cli, watch as cli_watch
from worker.cli.output import print_json, table
from server.terminal import RESET, safe, safe_coloured
from worker.client.api import Client

# The trial's junk: a window title (OSC 0), a clipboard write (OSC 52), a
# screen clear, a carriage return that overwrites, a NUL, a CSI as one C1
# byte, and bidi overrides and isolates (Trojan Source).
JUNK = ("title:\x1b]0;PWNED\x07 clip:\x1b]52;c;ZWNobyBwd25lZA==\x07 clear:\x1b[2J cr:fake\roverwritten"
        " nul:\x00 del:\x7f csi:\x9b2J bidi:\u202eevil\u202c iso:\u2066x\u2069")
RAW = ["\x1b", "\x07", "\r", "\x00", "\x7f", "\x9b", "\u202e", "\u202c", "\u2066", "\u2069"]
SGR = re.compile(r"\x1b\[[0-9;]*m")


def inert(text: str, colours: bool = False) -> bool:
    """None of the junk raw (with `colours`, SGR sequences aside)."""
    if colours:
        text = SGR.sub("", text)
    return not any(ch in text for ch in RAW)


# ---- the one function ----------------------------------------------------------------------


def test_every_control_is_shown_visibly_and_text_kept():
    assert safe("title:\x1b]0;PWNED\x07") == "title:^[]0;PWNED^G"
    assert safe("cr:fake\roverwritten nul:\x00 del:\x7f") == "cr:fake^Moverwritten nul:^@ del:^?"
    assert safe("csi:\x9b2J \x85") == "csi:<U+009B>2J <U+0085>"
    assert safe("bidi:\u202eevil\u202c \u2066x\u2069") == "bidi:<U+202E>evil<U+202C> <U+2066>x<U+2069>"
    # what a terminal shows as text stays as it is: tabs, line ends, any script
    assert safe("a\tb\nc é 日本 ✓\n") == "a\tb\nc é 日本 ✓\n"
    # a CR ending a line (CRLF output) is a line end, not an overwrite
    assert safe("one\r\ntwo\r\n") == "one\ntwo\n"
    assert inert(safe(JUNK)) and safe(safe(JUNK)) == safe(JUNK)


def test_colours_are_kept_in_logs_and_reset_at_each_line_end():
    assert safe_coloured("\x1b[1;31mred\x1b[0m ok\n") == f"\x1b[1;31mred\x1b[0m ok{RESET}\n"
    # a colour left open does not bleed into the next line (another job's, or rota's own)
    assert safe_coloured("\x1b[8mhidden\nnext\n") == f"\x1b[8mhidden{RESET}\nnext\n"
    assert safe_coloured("plain\n") == "plain\n"
    # every other sequence, and a colour outside a log, is shown
    assert safe_coloured("\x1b[2J\x1b]0;x\x07") == "^[[2J^[]0;x^G"
    assert safe("\x1b[31mred") == "^[[31mred"
    assert inert(safe_coloured(JUNK), colours=True)


def test_tables_and_json_show_no_control():
    out = table(["A", "B"], [["x\x1b]0;T\x07", "\u202eok"]])
    assert inert(out) and "^[]0;T^G" in out and "<U+202E>ok" in out


def test_json_escapes_what_a_terminal_would_act_on_and_means_the_same(capsys):
    value = {"error": JUNK, "k": "é日本"}
    print_json(value)
    out = capsys.readouterr().out
    assert inert(out) and "é日本" in out
    assert json.loads(out) == value  # the same document, escaped differently


# ---- every printer ---------------------------------------------------------------------------

ONE_JOB = """
name: junk
jobs:
  j:
    run: ./junk.sh
"""


async def _junk_run(api) -> tuple[dict, dict]:
    """A run whose one job wrote the junk everywhere it can, then failed with it."""
    await put(api, "junk", ONE_JOB)
    run = await start(api, "junk")
    claimed = await claim(api, "w\u202eevil")
    lid = claimed["lease"]["lease_id"]
    await log(api, claimed, 0, JUNK + "\n\x1b[32mgreen\n")
    calls = [("log", {"message": JUNK, "level": "warn"}),
             ("progress", {"progress_percent": 50, "current_step_name": JUNK[:200]}),
             ("steps/s1/running", {"name": JUNK[:200]}),
             ("steps/s1/failed", {"error_message": JUNK}),
             ("annotate", {"k": JUNK}),
             ("annotate", {"markdown": JUNK + "\nline two " + JUNK, "context": "c"})]
    for path, body in calls:
        resp = await api.post(f"/api/jobs/{lid}/{path}", json=body)
        assert resp.status_code in (200, 201, 202), (path, resp.text)
    await finish(api, claimed, ok=False, error="exit code 1: boom " + JUNK + "\nmore " + JUNK)
    return run, claimed


async def test_logs_show_the_junk_inert_unless_raw(api, rota):
    await _junk_run(api)
    for argv in (("logs", "junk", "j"), ("logs", "junk")):  # one job, and each line behind its job
        code, out, _ = await rota(*argv)
        assert code == 0 and "PWNED" in out and "fake^Moverwritten" in out and "<U+202E>evil" in out, out
        assert inert(out, colours=True), out
        assert "\x1b[32mgreen" in out  # a job's colours are its own to keep
    code, raw, _ = await rota("logs", "junk", "j", "--raw")
    assert code == 0 and JUNK in raw  # the bytes as written, for a file


async def test_logs_header_shows_a_workers_id_inert(api, rota):
    await _junk_run(api)
    await api.post("/api/runs/" + (await api.get("/api/workflows/junk")).json()["latest_run_id"] + "/retry")
    await finish(api, await claim(api, "w\u2066two"), ok=False, error="again")
    _, out, _ = await rota("logs", "junk", "j")
    assert "--- attempt 0 on w<U+202E>evil ---" in out and inert(out, colours=True), out


async def test_status_shows_errors_steps_annotations_progress_and_notes_inert(api, rota):
    await _junk_run(api)
    for argv in (("status", "junk"), ("status", "junk", "--full")):
        code, out, _ = await rota(*argv)
        assert code == 0 and out.count("PWNED") >= 4 and inert(out), out
    _, full, _ = await rota("status", "junk", "--full")
    assert "  more title:^[]0;PWNED^G" in full and "line two title:^[]0;PWNED^G" in full, full
    _, as_json, _ = await rota("status", "junk", "--json")
    assert inert(as_json) and json.loads(as_json)["jobs"][0]["error"].startswith("exit code 1: boom " + JUNK)


NAMED = """
name: named
run-name: deploy ${{ inputs.target }}
on: {workflow_dispatch: {inputs: {target: {default: prod}}}}
jobs:
  a: {run: ./deploy}
"""


async def test_a_run_name_rendered_from_inputs_is_shown_inert(api, rota):
    # (a job's child run gets its inputs from that job)
    await put(api, "named", NAMED)
    await start(api, "named", inputs={"target": "x\x1b]0;PWNED\x07\u202e"})
    for argv in (("status", "named"), ("runs",)):
        code, out, _ = await rota(*argv)
        assert code == 0 and "deploy x^[]0;PWNED^G<U+202E>" in out and inert(out), (argv, out)


async def test_dead_letters_and_their_replay_show_the_error_inert(api, rota):
    await _junk_run(api)
    code, out, _ = await rota("dead-letters")
    assert code == 0 and "PWNED" in out and inert(out), out
    code, out, _ = await rota("dead-letters", "--json")
    assert code == 0 and inert(out)


async def test_wait_and_follow_lines_show_the_junk_inert(app, api):
    run, _ = await _junk_run(api)
    for follow in (False, True):
        out = io.StringIO()
        async with Client("http://localhost", transport=httpx.ASGITransport(app=app)) as client:
            code = await cli_watch.watch(client, run["run_id"], follow=follow, out=out,
                                         pace=cli_watch.Pace(interval=0.005))
        text = out.getvalue()
        assert code == 1 and "j: failure: exit code 1: boom title:^[]0;PWNED^G" in text, text
        assert inert(text, colours=follow), text
        if follow:
            assert "j | title:^[]0;PWNED^G" in text, text


async def test_listings_show_what_workers_and_jobs_sent_inert(api, rota):
    await _junk_run(api)
    await api.post("/api/workers/register", json={"worker_id": "w\u202eevil", "version": JUNK[:60],
                                                  "host": "h\x1b]0;x\x07"})
    for argv in (("workers",), ("runs",), ("workflows",)):
        code, out, _ = await rota(*argv)
        assert code == 0 and inert(out), (argv, out)
    _, out, _ = await rota("workers")
    assert "w<U+202E>evil" in out and "h^[]0;x^G" in out, out


def test_an_error_answer_is_printed_inert(capsys):
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(409, json={"error": {"code": "conflict", "message": "no: " + JUNK, "details": None}})

    def connect(server: str, token: str | None = None) -> Client:
        return Client(server, token=token, transport=httpx.MockTransport(refuse))

    assert cli.main(["workers", "--server", "http://rota.test"], client_factory=connect) == 2
    err = capsys.readouterr().err
    assert "PWNED" in err and inert(err), err


def test_a_wait_line_keeps_a_failed_jobs_error_lines_inert():
    from server.models import JobOut
    from worker.cli.show import state_line

    job = JobOut(id="j", name="j", status="failure", command="x", depends_on=[], required_labels=[],
                 max_retries=0, attempt=0, error="boom\n\x1b]0;T2\x07 second line")
    assert state_line(job) == "j: failure: boom\n^[]0;T2^G second line"


# ---- the trial's reproduction, with real processes ------------------------------------------


@pytest.fixture
def worker(server, tmp_path, label):
    proc = WorkerProc(server, tmp_path, f"w-{label}", "--labels", label)
    yield proc
    proc.stop()


@pytest.mark.slow
def test_the_trials_junk_reaches_no_terminal_raw(server, worker, label, tmp_path):
    path = tmp_path / "junk.yml"
    path.write_text(yaml.safe_dump({"name": "junk", "jobs": {
        "junk": {"labels": [label], "run": "printf 'title:\\033]0;PWNED\\007 clip:\\033]52;c;ZWNobyBwd25lZA==\\007"
                 " clear:\\033[2J cr:fake\\roverwritten\\n'"},
        "jf": {"labels": [label], "run": "printf 'boom \\033]0;T2\\007\\n' >&2; exit 3"}}}))
    workflow_id = f"junk-{label}"
    waited = rota_proc("submit", str(path), "--id", workflow_id, "--wait", server=server)
    assert waited.returncode == 1 and "T2^G" in waited.stdout and inert(waited.stdout), waited.stdout
    logs = rota_proc("logs", workflow_id, "junk", server=server)
    assert logs.stdout == "title:^[]0;PWNED^G clip:^[]52;c;ZWNobyBwd25lZA==^G clear:^[[2J cr:fake^Moverwritten\n"
    raw = rota_proc("logs", workflow_id, "junk", "--raw", server=server)
    assert "\x1b]0;PWNED\x07" in raw.stdout
    for argv in (("status", workflow_id), ("status", workflow_id, "--full"),
                 ("dead-letters", "--workflow", workflow_id)):
        done = rota_proc(*argv, server=server)
        assert done.returncode == 0 and "T2^G" in done.stdout and inert(done.stdout), (argv, done.stdout)
    # the worker's own log, on the terminal it runs in, says why the job failed
    assert "boom ^[]0;T2^G" in worker.log() and inert(worker.log()), worker.log()
