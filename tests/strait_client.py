"""A Strait-shaped management client: plain HTTP using only seed 003's
paths, query parameters, bodies and answer fields (`/v1/runs...`), as a
program written against Strait's documentation would. The tests point it
at rota, in process and as a real server."""

from __future__ import annotations

from typing import Any, Optional

import httpx

PROJECT = "proj-acme"  # any project id: rota has one project


class StraitError(Exception):
    def __init__(self, response: httpx.Response):
        super().__init__(f"{response.status_code}: {response.text}")
        self.status = response.status_code


class StraitRuns:
    def __init__(self, http: httpx.AsyncClient, token: Optional[str] = None):
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def _call(self, method: str, path: str, *, params: Optional[dict] = None, body: Any = None) -> Any:
        resp = await self.http.request(method, path, params=params, json=body, headers=self.headers)
        if resp.status_code >= 400:
            raise StraitError(resp)
        return resp.json() if resp.content else None

    async def list(self, **filters: Any) -> list[dict]:
        return await self._call("GET", "/v1/runs", params={"project_id": PROJECT, **filters})

    async def list_all(self, page: int = 2, **filters: Any) -> list[dict]:
        """Every page, following the cursor (the last run's created_at)."""
        out: list[dict] = []
        cursor = None
        while True:
            params = {"limit": page, **filters, **({"cursor": cursor} if cursor else {})}
            got = await self.list(**params)
            out += got
            if len(got) < page:
                return out
            cursor = got[-1]["created_at"]

    async def get(self, run_id: str) -> dict:
        return await self._call("GET", f"/v1/runs/{run_id}")

    async def cancel(self, run_id: str) -> None:
        await self._call("DELETE", f"/v1/runs/{run_id}")

    async def replay(self, run_id: str) -> dict:
        return await self._call("POST", f"/v1/runs/{run_id}/replay")

    async def dlq(self) -> list[dict]:
        return await self._call("GET", "/v1/runs/dlq", params={"project_id": PROJECT})

    async def dlq_replay(self, run_id: str) -> dict:
        return await self._call("POST", f"/v1/runs/{run_id}/dlq-replay")

    async def bulk_cancel(self, run_ids: list[str]) -> dict:
        return await self._call("POST", "/v1/runs/bulk-cancel", body={"run_ids": run_ids})

    async def bulk_cancel_all(self, **filters: Any) -> dict:
        return await self._call("POST", "/v1/runs/bulk-cancel-all", params={"project_id": PROJECT}, body=filters)

    async def bulk_replay(self, run_ids: list[str]) -> list[dict]:
        return await self._call("POST", "/v1/runs/bulk-replay", body={"run_ids": run_ids})

    async def bulk_dlq_replay(self, run_ids: list[str]) -> dict:
        return await self._call("POST", "/v1/runs/bulk-dlq-replay", body={"run_ids": run_ids})

    async def children(self, run_id: str) -> list[dict]:
        return await self._call("GET", f"/v1/runs/{run_id}/children")

    async def events(self, run_id: str, **filters: Any) -> list[dict]:
        return await self._call("GET", f"/v1/runs/{run_id}/events", params=filters)

    async def checkpoints(self, run_id: str) -> list[dict]:
        return await self._call("GET", f"/v1/runs/{run_id}/checkpoints")

    async def usage(self, run_id: str) -> list[dict]:
        return await self._call("GET", f"/v1/runs/{run_id}/usage")

    async def tool_calls(self, run_id: str) -> list[dict]:
        return await self._call("GET", f"/v1/runs/{run_id}/tool-calls")

    async def outputs(self, run_id: str) -> list[dict]:
        return await self._call("GET", f"/v1/runs/{run_id}/outputs")

    async def debug_bundle(self, run_id: str) -> dict:
        return await self._call("GET", f"/v1/runs/{run_id}/debug-bundle")

    async def set_debug(self, run_id: str, on: bool) -> None:
        await self._call("POST", f"/v1/runs/{run_id}/debug", body={"debug_mode": on})

    async def lineage(self, run_id: str) -> list[dict]:
        return await self._call("GET", f"/v1/runs/{run_id}/lineage")

    async def dependency_status(self, run_id: str) -> dict:
        return await self._call("GET", f"/v1/runs/{run_id}/dependency-status")

    async def reset_idempotency_key(self, run_id: str) -> dict:
        return await self._call("DELETE", f"/v1/runs/{run_id}/idempotency-key")

    async def reschedule(self, run_id: str, scheduled_at: str) -> dict:
        return await self._call("POST", f"/v1/runs/{run_id}/reschedule", body={"scheduled_at": scheduled_at})

    async def restart(self, run_id: str, machine_preset: Optional[str] = None) -> dict:
        body = {"machine_preset": machine_preset} if machine_preset else {}
        return await self._call("POST", f"/v1/runs/{run_id}/restart", body=body)

    async def pause(self, run_id: str) -> dict:
        return await self._call("POST", f"/v1/runs/{run_id}/pause")

    async def resume(self, run_id: str) -> dict:
        return await self._call("POST", f"/v1/runs/{run_id}/resume")

    async def state(self, run_id: str) -> Any:
        return await self._call("GET", f"/v1/runs/{run_id}/state")


# Every field of seed 003's run object.
RUN_FIELDS = {
    "id", "job_id", "project_id", "status", "attempt", "payload", "result", "metadata", "error", "triggered_by",
    "scheduled_at", "started_at", "finished_at", "heartbeat_at", "next_retry_at", "expires_at", "parent_run_id",
    "priority", "idempotency_key", "job_version", "workflow_step_run_id", "max_attempts_override",
    "timeout_secs_override", "retry_backoff", "retry_initial_delay_secs", "retry_max_delay_secs", "execution_trace",
    "debug_mode", "continuation_of", "lineage_depth", "tags", "job_version_id", "created_by", "batch_id",
    "concurrency_key", "created_at",
}
