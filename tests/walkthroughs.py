"""The manual's walkthroughs, run as written: the fenced blocks marked
`<!-- walkthrough: NAME [option ...] -->` in README.md and docs/*.md are
extracted in order, their commands run by one bash against a real server,
and each answer the manual shows is compared, by shape, with the one given.

Markers (an HTML comment on the line before a fence; GitHub and MkDocs
show nothing of it):

    <!-- walkthrough: NAME -->              shell commands; a line starting
                                            with `{`, `[` or `null` right
                                            after a command is its answer
    <!-- walkthrough: NAME answer -->       the previous command's answer
    <!-- walkthrough: NAME answer unordered -->
                                            the same, compared line by line
                                            in any order, leaving out `--wait`
                                            lines of jobs still queued or
                                            running (polling may miss them)
    <!-- walkthrough: NAME file=PATH -->    the block is written to PATH
    <!-- walkthrough: NAME background=ID --> one command, run in the
                                            background (a second terminal)
    <!-- walkthrough: NAME output=ID -->    what that command prints first;
                                            right after its command, the
                                            walkthrough waits for it (a
                                            worker registered) before going on

Shape: JSON objects must have the same keys, and every value must be the
same except what differs from run to run (ids, tokens, times; see
`normalize` and `_VOLATILE_NUMBER`). Text is compared line by line after
`normalize`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC_SERVER = "http://127.0.0.1:3000"
_MARK = re.compile(r"^<!-- walkthrough: ([\w-]+)((?: [\w=./-]+)*) -->$")
_FENCE = re.compile(r"^(`{3,})")
_ANSWER_LINE = re.compile(r"^(\{|\[|null\b)")
_HEREDOC = re.compile(r"<<-?\s*'?\"?(\w+)'?\"?")
_STATE_LINE = re.compile(r"^\[<t>\] [\w.-]+: (queued|running)( .*)?$")
# Numbers that are times: compared by type only.
_VOLATILE_NUMBER = re.compile(r"(_ms|_at|^duration_secs)$")
_SUBSTITUTIONS = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    (re.compile(r"\brot[ar]_[\w-]+"), "<token>"),
    (re.compile(r"\b\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d([.,]\d+)?)?Z?"), "<time>"),
    (re.compile(r"^\[\d+:\d\d\]"), "[<t>]"),
    (re.compile(r"\b\d{13}-\d+\b"), "<stream-id>"),
    (re.compile(r"\b\d{13}\b"), "<ms>"),  # an epoch time in milliseconds
    (re.compile(r"\b[0-9a-f]{16}\b"), "<token-id>"),
    (re.compile(r"\b[\w.]+-\d+-[0-9a-f]{6}\b"), "<worker>"),  # the default worker id
    (re.compile(r"http://127\.0\.0\.1:\d+"), "<server>"),
]


def normalize(text: str) -> str:
    for pattern, placeholder in _SUBSTITUTIONS:
        text = pattern.sub(placeholder, text)
    return text.rstrip()


@dataclass
class Step:
    kind: str  # "run", "background", "file"
    text: str  # the command, or the file's content
    where: str  # file:line, for messages
    answer: str | None = None
    unordered: bool = False
    name: str = ""  # background id, or file path
    wait_lines: int = 0  # a background command: lines to wait for before going on


@dataclass
class Walkthrough:
    name: str
    steps: list[Step] = field(default_factory=list)
    outputs: dict[str, tuple[str, str]] = field(default_factory=dict)  # background id -> (expected, where)


def _blocks(path: Path):
    """(marker name, options, block text, where) for each marked fence."""
    lines = path.read_text().split("\n")
    i = 0
    while i < len(lines):
        mark = _MARK.match(lines[i].strip())
        if mark:
            fence = _FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
            if not fence:
                raise ValueError(f"{path.name}:{i + 1}: a walkthrough marker must be right above a fence")
            end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith(fence.group(1)))
            yield mark.group(1), mark.group(2).split(), "\n".join(lines[i + 2:end]), f"{path.name}:{i + 3}"
            i = end
        i += 1


def _complete(command: str) -> bool:
    if command.endswith("\\"):
        return False
    try:
        shlex.split(command, comments=True)
    except ValueError:  # an open quote: the command goes on
        return False
    return True


def _commands(block: str, where: str) -> list[Step]:
    """Split a shell block into commands, each with the answer lines that follow it."""
    steps: list[Step] = []
    lines = block.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if _ANSWER_LINE.match(line):
            if not steps:
                raise ValueError(f"{where}: an answer before any command")
            steps[-1].answer = (steps[-1].answer + "\n" if steps[-1].answer else "") + line
            i += 1
            continue
        command = [line]
        heredoc = _HEREDOC.search(line)
        i += 1
        if heredoc:
            while i < len(lines) and lines[i] != heredoc.group(1):
                command.append(lines[i])
                i += 1
            command.append(lines[i])
            i += 1
        while not _complete("\n".join(command)) and i < len(lines):
            command.append(lines[i])
            i += 1
        steps.append(Step("run", "\n".join(command), where))
    return steps


def collect(paths: list[Path]) -> dict[str, Walkthrough]:
    found: dict[str, Walkthrough] = {}
    for path in paths:
        for name, options, text, where in _blocks(path):
            w = found.setdefault(name, Walkthrough(name))
            opts = dict(o.split("=", 1) if "=" in o else (o, "") for o in options)
            if "answer" in opts:
                if not w.steps or w.steps[-1].kind != "run":
                    raise ValueError(f"{where}: an answer with no command before it")
                w.steps[-1].answer, w.steps[-1].unordered = text, "unordered" in opts
            elif "file" in opts:
                w.steps.append(Step("file", text + "\n", where, name=opts["file"]))
            elif "background" in opts:
                w.steps.append(Step("background", text.strip(), where, name=opts["background"]))
            elif "output" in opts:
                w.outputs[opts["output"]] = (text, where)
                last = w.steps[-1] if w.steps else None
                if last is not None and last.kind == "background" and last.name == opts["output"]:
                    last.wait_lines = len([line for line in text.split("\n") if line.strip()])
            else:
                w.steps += _commands(text, where)
    return found


def doc_paths() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


# -- comparing ---------------------------------------------------------------

def _same(expected: Any, actual: Any, key: str, path: str, problems: list[str]) -> None:
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            problems.append(f"{path}: the manual shows an object, the server answered {json.dumps(actual)}")
            return
        if set(expected) != set(actual):
            extra, gone = sorted(set(actual) - set(expected)), sorted(set(expected) - set(actual))
            problems.append(f"{path}: keys differ: the answer also has {extra}, lacks {gone}")
        for k in expected.keys() & actual.keys():
            _same(expected[k], actual[k], k, f"{path}.{k}", problems)
    elif isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            problems.append(f"{path}: the manual shows {json.dumps(expected)}, the server answered {json.dumps(actual)}")
            return
        for n, (e, a) in enumerate(zip(expected, actual)):
            _same(e, a, key, f"{path}[{n}]", problems)
    elif isinstance(expected, str) and isinstance(actual, str):
        if normalize(expected) != normalize(actual):
            problems.append(f"{path}: the manual shows {expected!r}, the server answered {actual!r}")
    elif (isinstance(expected, (int, float)) and not isinstance(expected, bool) and _VOLATILE_NUMBER.search(key)):
        if not isinstance(actual, (int, float)) or isinstance(actual, bool):
            problems.append(f"{path}: the manual shows a number, the server answered {json.dumps(actual)}")
    elif expected != actual or type(expected) is not type(actual):
        problems.append(f"{path}: the manual shows {json.dumps(expected)}, the server answered {json.dumps(actual)}")


def _json(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text)
    except ValueError:
        return False, None


def _compare_line(expected: str, actual: str, problems: list[str], where: str) -> None:
    for prefix in ("data: ", ""):
        if expected.startswith(prefix) and actual.startswith(prefix):
            ok_e, e = _json(expected[len(prefix):])
            ok_a, a = _json(actual[len(prefix):])
            if ok_e and ok_a and isinstance(e, (dict, list)):
                _same(e, a, "", where, problems)
                return
    if normalize(expected) != normalize(actual):
        problems.append(f"{where}: the manual shows {expected!r}, the command printed {actual!r}")


def _lines(text: str) -> list[str]:
    # SSE comments (`: keep-alive`) come when they come.
    return [line for line in text.strip("\n").split("\n") if not line.startswith(": ")]


def compare(expected: str, actual: str, *, where: str, unordered: bool = False,
            prefix: bool = False) -> list[str]:
    """What differs between an answer the manual shows and what was printed."""
    problems: list[str] = []
    ok_e, e = _json(expected)
    if ok_e and not prefix:
        ok_a, a = _json(actual)
        if not ok_a:
            return [f"{where}: the manual shows JSON, the command printed {actual!r}"]
        _same(e, a, "", where, problems)
        return problems
    exp, act = _lines(expected), _lines(actual)
    if unordered:
        def keep(lines: list[str]) -> list[str]:
            return sorted(n for n in map(normalize, lines) if not _STATE_LINE.match(n))
        if keep(exp) != keep(act):
            return [f"{where}: the manual shows (in any order)\n  " + "\n  ".join(keep(exp))
                    + "\nthe command printed\n  " + "\n  ".join(keep(act))]
        return []
    if prefix:
        act = act[:len(exp)]
    if len(exp) != len(act):
        return [f"{where}: the manual shows {len(exp)} lines, the command printed {len(act)}:\n{actual}"]
    for n, (x, y) in enumerate(zip(exp, act)):
        _compare_line(x, y, problems, f"{where} line {n + 1}")
    return problems


# -- running -----------------------------------------------------------------

_MARKER = "@@walkthrough-step-{n}-rc-"


def script(w: Walkthrough, server: str, workdir: Path) -> str:
    """One bash script for the whole walkthrough: each foreground command's
    output ends with a marker line carrying its exit status."""
    out = ["set -u"]
    for n, step in enumerate(w.steps):
        text = step.text.replace(DOC_SERVER, server)
        if step.kind == "file":
            (workdir / step.name).parent.mkdir(parents=True, exist_ok=True)
            (workdir / step.name).write_text(step.text)
        elif step.kind == "background":
            out += ["{ " + text, f"}} > .bg-{step.name}.out 2>&1 &"]
            if step.wait_lines:  # generous: a busy machine may take a while to start it
                out.append(f"for _ in $(seq 1200); do [ $(grep -c . .bg-{step.name}.out) -ge {step.wait_lines} ]"
                           " && break; sleep 0.1; done")
        else:
            out += [text, f'echo; echo "{_MARKER.format(n=n)}$?@@"']
    return "\n".join(out) + "\n"


def split_outputs(stdout: str) -> dict[int, tuple[str, int]]:
    """Step number -> (what it printed, its exit status)."""
    found, start = {}, 0
    for m in re.finditer(r"\n?@@walkthrough-step-(\d+)-rc-(\d+)@@\n", stdout):
        text = stdout[start:m.start()]
        found[int(m.group(1))] = (text[:-1] if text.endswith("\n") else text, int(m.group(2)))
        start = m.end()
    return found


def run(w: Walkthrough, server: str, workdir: Path, env: dict[str, str], timeout: float = 240) -> list[str]:
    """Runs the walkthrough in `workdir`; returns every difference found.
    The script and what it starts in the background share one process
    group, stopped (SIGTERM, as a reader's Ctrl-C) once the answers are in."""
    proc = subprocess.Popen(["bash", "-c", script(w, server, workdir)], cwd=workdir, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    problems: list[str] = []
    try:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            problems.append(f"the {w.name} walkthrough did not finish within {timeout:.0f}s")
        outputs = split_outputs(stdout)
        for n, step in enumerate(w.steps):
            if step.kind != "run":
                continue
            if n not in outputs:
                problems.append(f"{step.where}: `{step.text}` never finished:\n{stdout}\n{stderr}")
                break
            printed, status = outputs[n]
            if status != 0:
                problems.append(f"{step.where}: `{step.text}` exited {status}:\n{printed}\n{stderr}")
            if step.answer is not None:
                problems += compare(step.answer, printed, where=step.where, unordered=step.unordered)
        problems += _check_background(w, workdir)
    finally:
        _stop_group(proc.pid)
    return problems


# The manual's reader runs `rota worker` as themselves; this suite may run as
# root (CI does), where the worker rightly warns first that its jobs run as
# root. That one line is the machine's, not the manual's: left out of the
# comparison, and nothing else is.
_ROOT_WARNING = re.compile(r"^.* WARNING running as root without --run-as: .*\n", re.M)


def _as_a_reader(printed: str) -> str:
    return _ROOT_WARNING.sub("", printed) if os.geteuid() == 0 else printed


def _check_background(w: Walkthrough, workdir: Path, deadline_secs: float = 60) -> list[str]:
    """Waits (generously) for each background command to have printed what
    the manual shows; then compares."""
    problems = []
    for bg, (expected, where) in w.outputs.items():
        out = workdir / f".bg-{bg}.out"
        deadline = time.monotonic() + deadline_secs
        while True:
            printed = _as_a_reader(out.read_text(errors="replace") if out.exists() else "")
            found = compare(expected, printed, where=where, prefix=True)
            if not found or time.monotonic() > deadline:
                problems += found
                break
            time.sleep(0.2)
    return problems


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


def _stop_group(pgid: int, grace_secs: float = 30) -> None:
    """SIGTERM to what is left (a worker drains and exits), SIGKILL after a grace."""
    if not _signal_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace_secs
    while time.monotonic() < deadline:
        if not _signal_group(pgid, 0):
            return
        time.sleep(0.1)
    _signal_group(pgid, signal.SIGKILL)
