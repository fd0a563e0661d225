"""The in-job SDK for Python jobs: a running job reporting to its server.

    from worker.sdk import current_job

    job = current_job()
    start = job.load_checkpoint() or {"batch": 0}
    for batch in range(start["batch"], 10):
        ...
        job.progress(batch * 10, f"batch {batch}")
        job.checkpoint({"batch": batch + 1})
    job.output(rows="1200")

`rota worker` puts ROTA_SERVER, ROTA_LEASE_ID and ROTA_RUN_TOKEN in each
job's environment; every call goes to `/api/jobs/$ROTA_LEASE_ID/...` with
the run token as its bearer (docs/sdk.md).

Only the standard library, so a job can use this file with any Python 3.9+
without installing rota: copy it next to the job if rota's own Python is
not the one the job runs. The `rota progress`, `rota state`, ... commands
(worker/cli_job.py) are built on it.

Errors: `NotInJob` outside a job; `LeaseEnded` once the job's lease has
ended (the job finished, was retried, cancelled, its lease expired, or it
gave the lease up to wait for an event), when nothing the job sends is
recorded any more; `SdkError` for everything else (the server refused the
call, or could not be reached). Each one's str() is one line for a user.
Calls are not retried: a progress report lost to a server blip is better
skipped than the job held up.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any, Dict, Mapping, Optional, Union
from urllib.parse import quote

__all__ = ["Job", "RunState", "SdkError", "NotInJob", "LeaseEnded", "current_job"]

# A call that is not answered in this long fails (the server answers every
# in-job call at once).
TIMEOUT_SECS = 30.0
# The answers to a call of a lease that is over: nothing was recorded.
_LEASE_ENDED = {
    "lease_lost": "the job finished, was retried or its lease expired",
    "job_cancelled": "the job was cancelled",
    "job_waiting": "the job gave its lease up to wait for an event",
}


# The server's answer once a job attempt's log reached LOG_MAX_BYTES.
LOG_FULL = "log_limit_exceeded"


class SdkError(Exception):
    """A call failed; str() is one line fit to show a user."""

    def __init__(self, message: str, status: Optional[int] = None, code: Optional[str] = None,
                 details: Any = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.details = details


class NotInJob(SdkError):
    """Not inside a job run by `rota worker`: there is no lease to report to."""


class LeaseEnded(SdkError):
    """The job's lease has ended: the server records nothing more from it."""


def current_job(environ: Optional[Mapping[str, str]] = None) -> "Job":
    """The job this process runs in, from the variables `rota worker` sets."""
    env = os.environ if environ is None else environ
    missing = [name for name in ("ROTA_LEASE_ID", "ROTA_SERVER") if not env.get(name)]
    if missing:
        raise NotInJob(f"not inside a rota job: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'}"
                       " not set (rota worker sets ROTA_SERVER, ROTA_LEASE_ID and ROTA_RUN_TOKEN for each job)")
    return Job(env["ROTA_SERVER"], env["ROTA_LEASE_ID"], env.get("ROTA_RUN_TOKEN") or None, env)


def request(server: str, token: Optional[str], method: str, path: str, body: Any = None, *,
            content: Optional[bytes] = None, content_type: str = "application/json") -> Any:
    """One call to the rota API; its decoded JSON answer (None for an empty one)."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        content = json.dumps(body, ensure_ascii=False).encode()
    if content is not None:
        headers["Content-Type"] = content_type
    url = server.rstrip("/") + path
    req = urllib.request.Request(url, data=content, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_SECS) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raise _refusal(exc) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise SdkError(f"cannot reach rota server at {server}: {reason}") from None
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise SdkError(f"unexpected answer from rota server at {server}: not JSON") from None


def _refusal(exc: urllib.error.HTTPError) -> SdkError:
    try:
        error = json.loads(exc.read())["error"]
        code, message, details = str(error["code"]), str(error["message"]), error.get("details")
    except (ValueError, KeyError, TypeError, OSError):
        code, message, details = f"http_{exc.code}", str(exc.reason), None
    if exc.code == 409 and code in _LEASE_ENDED:
        return LeaseEnded(f"this job's lease has ended ({code}: {_LEASE_ENDED[code]}); nothing was recorded",
                          exc.code, code, details)
    return SdkError(f"error {code}: {message}", exc.code, code, details)


def _read_json_file(path: Optional[str]) -> Any:
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SdkError(f"cannot read {path}: {exc}") from None


class Job:
    """One running job's calls, scoped to its lease."""

    def __init__(self, server: str, lease_id: str, run_token: Optional[str] = None,
                 environ: Optional[Mapping[str, str]] = None):
        env = os.environ if environ is None else environ
        self.server = server.rstrip("/")
        self.lease_id = lease_id
        self._token = run_token
        self.workflow_id = env.get("ROTA_WORKFLOW_ID", "")
        self.run_id = env.get("ROTA_RUN_ID", "")
        self.job_id = env.get("ROTA_JOB_ID", "")
        self.attempt = int(env.get("ROTA_ATTEMPT") or 0)
        self._checkpoint_file = env.get("ROTA_CHECKPOINT")
        self._event_file = env.get("ROTA_EVENT")
        self.state = RunState(self)

    def call(self, method: str, call: str, body: Any = None, **kwargs: Any) -> Any:
        """`method /api/jobs/{lease}/{call}`: any in-job call, by its path."""
        return request(self.server, self._token, method, f"/api/jobs/{quote(self.lease_id, safe='')}/{call}",
                       body, **kwargs)

    # ---- reports ---------------------------------------------------------------------

    def progress(self, percent: float, step_name: Optional[str] = None, *, step_index: Optional[int] = None,
                 metadata: Optional[Dict[str, Any]] = None) -> None:
        """How far the job is, 0-100, and what it is doing: shown in its status."""
        body: Dict[str, Any] = {"progress_percent": percent}
        if step_name is not None:
            body["current_step_name"] = step_name
        if step_index is not None:
            body["current_step_index"] = step_index
        if metadata is not None:
            body["metadata"] = metadata
        self.call("POST", "progress", body)

    def log(self, level: str, message: str, **data: Any) -> bool:
        """A log entry (debug, info, warn, error) in the job's log beside its output;
        keyword arguments are its structured `log_data`. False once the job's
        log is full (the server's LOG_MAX_BYTES): the entry is dropped, as the
        job's output is then, and the job runs on."""
        body: Dict[str, Any] = {"level": level, "message": message}
        if data:
            body["log_data"] = data
        try:
            answer = self.call("POST", "log", body)
        except SdkError as exc:
            if exc.code == LOG_FULL:
                return False
            raise
        # the call that filled the log: the entry was dropped
        return not (isinstance(answer, dict) and answer.get("dropped"))

    def checkpoint(self, data: Any) -> None:
        """Save any JSON (at most 1 MiB) for the job's next attempt, which
        gets the latest as load_checkpoint()."""
        self.call("POST", "checkpoint", {"data": data})

    def load_checkpoint(self, default: Any = None) -> Any:
        """The checkpoint this attempt started with (an earlier attempt's
        latest), or `default` on a first attempt."""
        value = _read_json_file(self._checkpoint_file)
        return default if value is None else value

    def event(self, default: Any = None) -> Any:
        """The payload of the event this job waited for, or `default` if it did not wait."""
        value = _read_json_file(self._event_file)
        return default if value is None else value

    def annotate(self, values: Optional[Mapping[str, str]] = None, /, **more: str) -> None:
        """Annotate the job with `key=value` strings, shown in its status."""
        self.call("POST", "annotate", {**(values or {}), **more})

    def annotate_run(self, markdown: str, style: str = "info", context: str = "default") -> None:
        """A Markdown note on the run (info, warning, error or success); a note
        of the same context replaces it."""
        self.call("POST", "annotate", {"markdown": markdown, "style": style, "context": context})

    def output(self, values: Optional[Mapping[str, str]] = None, /, **more: str) -> None:
        """Set outputs now (visible at once); those given at completion win."""
        self.call("POST", "output", {**(values or {}), **more})

    def spawn(self, document: Union[str, bytes, Mapping[str, Any]]) -> Dict[str, Any]:
        """Add jobs to the run (`{"jobs": {...}}` as a mapping, JSON or YAML
        text), or start a child run (`{"workflow_id", "inputs"}`); the answer
        `{jobs: [ids], child_run_id}`."""
        if isinstance(document, Mapping):
            return self.call("POST", "spawn", dict(document))
        content = document.encode() if isinstance(document, str) else document
        kind = "application/json" if content.lstrip()[:1] in (b"{", b"[") else "application/yaml"
        return self.call("POST", "spawn", content=content, content_type=kind)

    def wait_for_event(self, key: str, timeout_secs: int = 86_400) -> Dict[str, Any]:
        """End this attempt as waiting for event `key`: the lease is released
        and `rota worker` stops the job. It runs again, with its checkpoint
        and event() = the event's payload, when `POST /api/events/{key}`
        comes, or fails after `timeout_secs`. Save a checkpoint first."""
        return self.call("POST", "wait-for-event", {"event_key": key, "timeout_secs": int(timeout_secs)})

    def payload(self) -> Dict[str, Any]:
        """The run's inputs, the job's upstream outputs, checkpoint and event."""
        return self.call("GET", "payload")


class RunState:
    """The run's key/value store, shared by its jobs: values any JSON (64 KiB each)."""

    def __init__(self, job: Job):
        self._job = job

    def _path(self, key: str) -> str:
        return "state/" + quote(key, safe="")

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self._job.call("GET", self._path(key))["value"]
        except SdkError as exc:
            if exc.status == 404 and exc.code == "state_key_not_found":
                return default
            raise

    def set(self, key: str, value: Any) -> None:
        self._job.call("PUT", self._path(key), {"value": value})

    def delete(self, key: str) -> None:
        self._job.call("DELETE", self._path(key))

    def all(self) -> Dict[str, Any]:
        return self._job.call("GET", "state")
