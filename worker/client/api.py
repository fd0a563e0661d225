"""The typed HTTP client for the rota API, shared by the worker daemon and the CLI.

Requests are encoded from and responses decoded into the wire types of
`server.models`, so a field that changes there changes here. Failures
surface as errors.py's `Unreachable` and `ApiError`; log tails read their
streams with sse.py.

With a token, every request (SSE streams included) carries
`Authorization: Bearer <token>`. A 401 or 403 answer is an `ApiError` like
any other 4xx: not transient, since retrying a refused token changes nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Optional

import httpx
import msgspec

from server.models import (
    ClaimRequest,
    ClaimResponse,
    CompleteRequest,
    FailRequest,
    HandBackRequest,
    HandedBack,
    HeartbeatResponse,
    JobLogChunk,
    JobOut,
    LogChunk,
    LogsAccepted,
    LogsRequest,
    RegisterRequest,
    ResourceSample,
    ResultAccepted,
    StepUpdate,
    TokenCreate,
    TokenCreated,
    TokenOut,
    WorkerOut,
    WorkersPruned,
    WorkflowOut,
)
from worker.client.errors import ApiError, RotaError, Unreachable, is_outage
from worker.client.runs import Outages, RunsApi
from worker.client.runs import path_part as _path
from worker.client.runs import with_key as _with_key
from worker.client.sse import SseParser, sse_lines

DEFAULT_SERVER = "http://127.0.0.1:3000"
# A long-poll claim is answered after at most wait_secs; allow this much more.
_CLAIM_SLACK_SECS = 10.0
# The server sends keep-alive comments, so a stream silent this long is dead.
_STREAM_TIMEOUT = httpx.Timeout(10.0, read=60.0)
# Without an Outages to wait a server out, a log tail that gets nothing
# this many tries in a row ends.
STREAM_RECONNECTS = 5
# `GET /api/tokens` answers at most this many per page.
_TOKEN_PAGE = 1000


class Client(RunsApi):
    def __init__(
        self,
        server: str = DEFAULT_SERVER,
        *,
        token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        stream_reconnects: int = STREAM_RECONNECTS,
    ):
        self.server = server.rstrip("/")
        self._stream_reconnects = stream_reconnects
        # Default headers go on every request, streams included. httpx drops
        # Authorization on a redirect to another origin (and follows none here).
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self._http = httpx.AsyncClient(base_url=self.server, headers=headers, transport=transport, timeout=10.0)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ---- worker protocol ----------------------------------------------------

    async def register(self, worker_id: str, labels: list[str]) -> None:
        await self._send("POST", "/api/workers/register", RegisterRequest(worker_id=worker_id, labels=labels))

    async def claim(
        self, worker_id: str, labels: list[str], lease_ttl_secs: int, wait_secs: float,
        claim_id: Optional[str] = None,
    ) -> Optional[ClaimResponse]:
        response = await self._send(
            "POST",
            "/api/jobs/claim",
            ClaimRequest(worker_id, labels, lease_ttl_secs, wait_secs, claim_id),
            timeout=wait_secs + _CLAIM_SLACK_SECS,
        )
        return self._decode(response.content, Optional[ClaimResponse])

    async def heartbeat(self, lease_id: str) -> HeartbeatResponse:
        response = await self._send("POST", f"/api/jobs/{_path(lease_id)}/heartbeat")
        return self._decode(response.content, HeartbeatResponse)

    async def complete(self, lease_id: str, outputs: dict[str, str]) -> ResultAccepted:
        response = await self._send("POST", f"/api/jobs/{_path(lease_id)}/complete", CompleteRequest(outputs=outputs))
        return self._decode(response.content, ResultAccepted)

    async def fail(self, lease_id: str, error: str, retryable: bool, error_type: str | None = None) -> ResultAccepted:
        """`error_type`: `timeout` for a job stopped at its timeout (its
        attempt then shows `timed_out`)."""
        body = FailRequest(error=error, retryable=retryable, error_type=error_type)
        response = await self._send("POST", f"/api/jobs/{_path(lease_id)}/fail", body)
        return self._decode(response.content, ResultAccepted)

    async def release(self, lease_id: str, reason: str) -> HandedBack:
        """Hand a running job back unfinished: it runs again elsewhere, no retry spent."""
        response = await self._send("POST", f"/api/jobs/{_path(lease_id)}/release", HandBackRequest(reason=reason))
        return self._decode(response.content, HandedBack)

    async def push_logs(self, lease_id: str, chunks: list[LogChunk]) -> LogsAccepted:
        response = await self._send("POST", f"/api/jobs/{_path(lease_id)}/logs", LogsRequest(chunks))
        return self._decode(response.content, LogsAccepted)

    async def workers(self) -> list[WorkerOut]:
        response = await self._send("GET", "/api/workers")
        return self._decode(response.content, list[WorkerOut])

    async def remove_worker(self, worker_id: str) -> None:
        await self._send("DELETE", f"/api/workers/{_path(worker_id)}")

    async def prune_workers(self, unseen_for_secs: Optional[int] = None) -> WorkersPruned:
        params = {"unseen_for_secs": str(unseen_for_secs)} if unseen_for_secs is not None else None
        response = await self._send("DELETE", "/api/workers", params=params)
        return self._decode(response.content, WorkersPruned)

    # ---- workflows ------------------------------------------------------------

    async def submit(self, document: bytes, content_type: str, run: bool,
                     idempotency_key: Optional[str] = None) -> WorkflowOut:
        response = await self._send(
            "POST",
            "/api/workflows",
            content=document,
            headers=_with_key({"Content-Type": content_type}, idempotency_key),
            params={"run": "true"} if run else None,
        )
        return self._decode(response.content, WorkflowOut)

    async def status(self, workflow_id: str) -> WorkflowOut:
        response = await self._send("GET", f"/api/workflows/{_path(workflow_id)}/status")
        return self._decode(response.content, WorkflowOut)

    async def run(self, workflow_id: str) -> None:
        await self._send("POST", f"/api/workflows/{_path(workflow_id)}/run")

    async def cancel(self, workflow_id: str) -> None:
        await self._send("POST", f"/api/workflows/{_path(workflow_id)}/cancel")

    async def logs(self, workflow_id: str, job_id: str) -> list[JobLogChunk]:
        """The latest run's job's whole log (every page of it)."""
        path = f"/api/workflows/{_path(workflow_id)}/jobs/{_path(job_id)}/logs"
        return [chunk async for page in self._log_pages(path, {}) for chunk in page]

    async def follow_logs(self, workflow_id: str, job_id: str) -> AsyncIterator[JobLogChunk | JobOut]:
        """The latest run's job's log (see follow_run_logs)."""
        async for item in self._follow(f"/api/workflows/{_path(workflow_id)}/jobs/{_path(job_id)}/logs/stream"):
            yield item

    async def _follow(self, url: str, outages: Optional[Outages] = None) -> AsyncIterator[JobLogChunk | JobOut]:
        """A log stream's chunks, then the job's final state (its `end` event).

        A dropped connection resumes from the last event id, so no chunk is
        repeated or skipped; one that had sent events is resumed at once,
        without a word (a server restarting or draining drops its streams).
        Without `outages`, a few tries in a row that get nothing end the
        tail with Unreachable (an error answer, at once). With it, a server
        that is out (unreachable, 502/503/504) is waited for however long it
        takes (the caller bounds it), telling `outages` when it was lost and
        when it is back.
        """
        last_id: Optional[str] = None
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            connected = got_events = False
            try:
                async with self._http.stream("GET", url, headers=headers, timeout=_STREAM_TIMEOUT) as response:
                    if response.is_error:
                        await response.aread()
                        raise ApiError.from_response(response)
                    connected = True
                    if outages is not None:
                        outages.back()
                    parser = SseParser()
                    async for line in sse_lines(response.aiter_bytes()):
                        event = parser.feed(line)
                        if event is None or event.name not in ("log", "end"):
                            continue  # (an `error` event: the stream ends, and is tried again)
                        got_events, failures = True, 0
                        last_id = event.id or last_id
                        if event.name == "end":
                            yield self._decode(event.data.encode(), JobOut)
                            return
                        yield self._decode(event.data.encode(), JobLogChunk)
                cause: RotaError = Unreachable(self.server, httpx.RemoteProtocolError(
                    "stream closed before the job's end event"))
            except httpx.TransportError as exc:
                cause = Unreachable(self.server, exc)
            except ApiError as exc:
                if outages is None or not is_outage(exc):
                    raise
                cause = exc
            if got_events:
                continue  # it was going: resume at once
            failures += 1
            if outages is None:
                if failures > self._stream_reconnects:
                    raise cause
                await asyncio.sleep(min(0.2 * 2**failures, 3.0))
                continue
            if not connected:
                outages.lost(cause)
            await asyncio.sleep(outages.backoff(failures))

    # ---- API tokens (admin scope) -----------------------------------------------

    async def create_token(self, name: str, scopes: list[str], expires_in_secs: int | None = None) -> TokenCreated:
        body = TokenCreate(name, scopes, expires_in_secs)  # type: ignore[arg-type]  # the server checks scopes
        response = await self._send("POST", "/api/tokens", body)
        return self._decode(response.content, TokenCreated)

    async def list_tokens(self) -> list[TokenOut]:
        """Every token (no secrets), newest first, read a page at a time."""
        tokens: list[TokenOut] = []
        while True:
            params = {"limit": str(_TOKEN_PAGE), "offset": str(len(tokens))}
            response = await self._send("GET", "/api/tokens", params=params)
            page = self._decode(response.content, list[TokenOut])
            tokens += page
            if len(page) < _TOKEN_PAGE:
                return tokens

    async def revoke_token(self, token_id: str) -> TokenOut:
        response = await self._send("DELETE", f"/api/tokens/{_path(token_id)}")
        return self._decode(response.content, TokenOut)

    # ---- plumbing -----------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        body: msgspec.Struct | None = None,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | list[tuple[str, str]] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        if body is not None:
            content = msgspec.json.encode(body)
            headers = {"Content-Type": "application/json"}
        try:
            response = await self._http.request(
                method,
                path,
                content=content,
                headers=headers,
                params=params,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise Unreachable(self.server, exc) from exc
        if response.is_error:
            raise ApiError.from_response(response)
        return response

    def _decode(self, content: bytes, type: Any) -> Any:
        try:
            return msgspec.json.decode(content, type=type)
        except msgspec.MsgspecError as exc:
            raise RotaError(f"unexpected response from rota server at {self.server}: {exc}") from exc

    # ---- lease reports (in-job SDK) -------------------------------------------------
    # What the daemon itself reports about a job it runs (its steps, its
    # resource use), beside what the job reports through worker/sdk.py.

    async def report_step(self, lease_id: str, step: int, state: str, update: StepUpdate) -> None:
        """`state`: running, completed, failed, skipped or progress; `step` is its index in `steps:`."""
        await self._send("POST", f"/api/jobs/{_path(lease_id)}/steps/{step}/{_path(state)}", update)

    async def report_resources(self, lease_id: str, sample: ResourceSample) -> None:
        await self._send("POST", f"/api/jobs/{_path(lease_id)}/resources", sample)
