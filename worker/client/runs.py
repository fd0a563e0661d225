"""The run-management half of `Client` (worker/client.py): definitions under
a stable id, runs, their jobs and logs, dead letters. A mixin, so the
worker-protocol half stays small; both speak through `Client._send`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, AsyncIterator, Optional, Protocol
from urllib.parse import quote, urlencode

import msgspec

from server.models import (
    DeadLetterPage, GroupPage, JobLogChunk, JobOut, LabelPaused, Paused, ReplayAnswer, Resolved, RunJobOut, RunOut,
    RunPage, RunPaused, ScheduleOut, WorkflowOut, WorkflowPaused,
)

if TYPE_CHECKING:
    import httpx


class Outages(Protocol):
    """What a log tail tells of an outage it rides out (worker/reconnect.py
    is the CLI's; Client._follow calls these)."""

    def lost(self, cause: BaseException) -> None: ...

    def back(self) -> None: ...

    def backoff(self, failures: int) -> float: ...


def path_part(*parts: str) -> str:
    return "/".join(quote(p, safe="") for p in parts)


_path = path_part


def with_key(headers: dict[str, str], idempotency_key: Optional[str]) -> dict[str, str]:
    return {**headers, "Idempotency-Key": idempotency_key} if idempotency_key else headers


_with_key = with_key


class RunsApi:
    if TYPE_CHECKING:
        async def _send(self, method: str, path: str, body: Any = None, **kw: Any) -> httpx.Response: ...
        def _decode(self, content: bytes, type: Any) -> Any: ...
        def _follow(self, url: str, outages: Optional[Outages] = None) -> AsyncIterator[JobLogChunk | JobOut]: ...

    async def put_workflow(self, workflow_id: str, document: bytes, content_type: str,
                           idempotency_key: Optional[str] = None) -> WorkflowOut:
        headers = {"Content-Type": content_type, **({"Idempotency-Key": idempotency_key} if idempotency_key else {})}
        response = await self._send("PUT", f"/api/workflows/{_path(workflow_id)}", content=document,
                                    headers=headers)
        return self._decode(response.content, WorkflowOut)

    async def delete_workflow(self, workflow_id: str) -> None:
        await self._send("DELETE", f"/api/workflows/{_path(workflow_id)}")

    async def start_run(self, workflow_id: str, inputs: dict[str, Any] | None = None,
                        tags: dict[str, str] | None = None, triggered_by: str = "cli",
                        idempotency_key: Optional[str] = None, **more: Any) -> RunOut:
        """`more`: the rest of a start's body (scheduled_at, delay, expires_in, overrides, ...)."""
        body = msgspec.json.encode({"inputs": inputs or {}, "tags": tags or {}, "triggered_by": triggered_by,
                                    **{k: v for k, v in more.items() if v is not None}})
        response = await self._send("POST", f"/api/workflows/{_path(workflow_id)}/runs", content=body,
                                    headers=_with_key({"Content-Type": "application/json"}, idempotency_key))
        return self._decode(response.content, RunOut)

    async def restart_run(self, run_id: str, idempotency_key: Optional[str] = None, **body: Any) -> RunOut:
        """A new run of the run's version, inputs and tags (body: overrides, tags, delay, ...)."""
        content = msgspec.json.encode({k: v for k, v in body.items() if v is not None})
        response = await self._send("POST", f"/api/runs/{_path(run_id)}/restart", content=content,
                                    headers=_with_key({"Content-Type": "application/json"}, idempotency_key))
        return self._decode(response.content, RunOut)

    async def reschedule_run(self, run_id: str, **body: Any) -> RunOut:
        response = await self._send("POST", f"/api/runs/{_path(run_id)}/reschedule",
                                    content=msgspec.json.encode(body), headers={"Content-Type": "application/json"})
        return self._decode(response.content, RunOut)

    async def list_schedules(self, workflow_id: Optional[str] = None, limit: int = 1000) -> list[ScheduleOut]:
        params = {"limit": str(limit), **({"workflow_id": workflow_id} if workflow_id else {})}
        response = await self._send("GET", "/api/schedules", params=params)
        return self._decode(response.content, list[ScheduleOut])

    async def pause_schedule(self, schedule_id: str, pause: bool = True) -> ScheduleOut:
        response = await self._send("POST", f"/api/schedules/{_path(schedule_id)}/{'pause' if pause else 'resume'}")
        return self._decode(response.content, ScheduleOut)

    async def resolve(self, ref: str) -> Resolved:
        """What a name stands for: a run id, a workflow id, or a one-off workflow's name."""
        response = await self._send("GET", f"/api/resolve/{_path(ref)}")
        return self._decode(response.content, Resolved)

    async def list_workflows(self, limit: int = 100, offset: int = 0) -> tuple[list[WorkflowOut], int]:
        """A page of workflows, newest first, and the offset of the next page."""
        response = await self._send("GET", "/api/workflows", params={"limit": str(limit), "offset": str(offset)})
        page = self._decode(response.content, list[WorkflowOut])
        return page, int(response.headers.get("x-next-offset") or offset + len(page))

    async def get_run(self, run_id: str) -> RunOut:
        response = await self._send("GET", f"/api/runs/{_path(run_id)}")
        return self._decode(response.content, RunOut)

    async def get_run_job(self, run_id: str, job_id: str) -> RunJobOut:
        response = await self._send("GET", f"/api/runs/{_path(run_id)}/jobs/{_path(job_id)}")
        return self._decode(response.content, RunJobOut)

    async def list_runs(self, workflow_id: Optional[str] = None, status: Optional[str] = None,
                        tags: dict[str, str] | None = None, limit: int = 100,
                        cursor: Optional[str] = None) -> RunPage:
        params: list[tuple[str, str]] = [("limit", str(limit))]
        params += [("status", status)] if status else []
        params += [("tag", f"{k}:{v}") for k, v in (tags or {}).items()]
        params += [("cursor", cursor)] if cursor else []
        path = f"/api/workflows/{_path(workflow_id)}/runs" if workflow_id else "/api/runs"
        response = await self._send("GET", path, params=params)
        return self._decode(response.content, RunPage)

    async def cancel_run(self, run_id: str, job_id: Optional[str] = None) -> RunOut:
        path = f"/api/runs/{_path(run_id)}" + (f"/jobs/{_path(job_id)}" if job_id else "") + "/cancel"
        return self._decode((await self._send("POST", path)).content, RunOut)

    async def retry_run(self, run_id: str, job_id: Optional[str] = None) -> RunOut:
        path = f"/api/runs/{_path(run_id)}" + (f"/jobs/{_path(job_id)}" if job_id else "") + "/retry"
        return self._decode((await self._send("POST", path)).content, RunOut)

    async def run_log_pages(self, run_id: str, job_id: str, attempt: Optional[int] = None,
                            level: Optional[str] = None) -> AsyncIterator[list[JobLogChunk]]:
        """A job's log a page at a time (the server bounds each in bytes),
        following X-Next-Cursor to the end."""
        async for page in self._log_pages(f"/api/runs/{_path(run_id)}/jobs/{_path(job_id)}/logs",
                                          _log_filter(attempt, level)):
            yield page

    async def pause_run(self, run_id: str, resume: bool = False) -> RunPaused:
        path = f"/api/runs/{_path(run_id)}/{'resume' if resume else 'pause'}"
        return self._decode((await self._send("POST", path)).content, RunPaused)

    async def pause_workflow(self, workflow_id: str, new_runs: str = "queue", resume: bool = False) -> WorkflowPaused:
        if resume:
            response = await self._send("POST", f"/api/workflows/{_path(workflow_id)}/resume")
        else:
            response = await self._send("POST", f"/api/workflows/{_path(workflow_id)}/pause",
                                        content=msgspec.json.encode({"new_runs": new_runs}),
                                        headers={"Content-Type": "application/json"})
        return self._decode(response.content, WorkflowPaused)

    async def pause_label(self, label: str, resume: bool = False) -> LabelPaused:
        path = f"/api/labels/{_path(label)}/{'resume' if resume else 'pause'}"
        return self._decode((await self._send("POST", path)).content, LabelPaused)

    async def paused(self) -> Paused:
        return self._decode((await self._send("GET", "/api/paused")).content, Paused)

    async def concurrency_groups(self, group: Optional[str] = None, limit: int = 100) -> GroupPage:
        params = {"limit": str(limit), **({"group": group} if group else {})}
        return self._decode((await self._send("GET", "/api/concurrency-groups", params=params)).content, GroupPage)

    async def run_logs(self, run_id: str, job_id: str, attempt: Optional[int] = None,
                       level: Optional[str] = None) -> list[JobLogChunk]:
        """A job's whole log (every page of it)."""
        return [chunk async for page in self.run_log_pages(run_id, job_id, attempt, level) for chunk in page]

    async def _log_pages(self, path: str, params: dict[str, str]) -> AsyncIterator[list[JobLogChunk]]:
        while True:
            response = await self._send("GET", path, params=params)
            yield self._decode(response.content, list[JobLogChunk])
            cursor = response.headers.get("X-Next-Cursor")
            if not cursor:
                return
            params = {**params, "after": cursor}

    async def follow_run_logs(self, run_id: str, job_id: str, attempt: Optional[int] = None,
                              level: Optional[str] = None,
                              outages: Optional[Outages] = None) -> AsyncIterator[JobLogChunk | JobOut]:
        """A job's log chunks (every attempt's, in order, unless `attempt`),
        history then live; the last item is its final state, sent once the
        job has finished for good and its worker has let go of it. With
        `outages`, the tail waits out a server that is out (see _follow)."""
        params = _log_filter(attempt, level)
        query = "?" + urlencode(params) if params else ""
        async for item in self._follow(f"/api/runs/{_path(run_id)}/jobs/{_path(job_id)}/logs/stream{query}",
                                       outages):
            yield item

    async def dead_letters(self, workflow_id: Optional[str] = None, limit: int = 100,
                           cursor: Optional[str] = None) -> DeadLetterPage:
        params = {"limit": str(limit), **({"workflow_id": workflow_id} if workflow_id else {}),
                  **({"cursor": cursor} if cursor else {})}
        response = await self._send("GET", "/api/dead-letters", params=params)
        return self._decode(response.content, DeadLetterPage)

    async def replay_dead_letters(self, workflow_id: Optional[str] = None) -> ReplayAnswer:
        body = msgspec.json.encode({"filter": {"workflow_id": workflow_id} if workflow_id else {}})
        response = await self._send("POST", "/api/dead-letters/replay", content=body,
                                    headers={"Content-Type": "application/json"})
        return self._decode(response.content, ReplayAnswer)


def _log_filter(attempt: Optional[int], level: Optional[str]) -> dict[str, str]:
    """`attempt`: only that attempt's chunks; `level`: only the job's SDK
    log entries of that level or above (output chunks are left out)."""
    return {**({"attempt": str(attempt)} if attempt is not None else {}), **({"level": level} if level else {})}
