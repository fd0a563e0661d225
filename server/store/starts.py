"""Starting runs: now or later (`scheduled_at`, `delay`, `expires_at`), with
their inputs checked against the workflow's declared ones, with per-run
overrides; restarting a run; rescheduling a delayed one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import msgspec

from .. import limits, overrides as ovr
from ..errors import Conflict, NotFound, Unprocessable
from ..groups import render_groups, run_contexts
from ..inputs import InputError, check_bounds, resolve
from ..models import InputSpec, RunOverrides
from .base import Definition, StoreBase, job_records, limit_exceeded

_encode = msgspec.json.encode
_overrides_decoder = msgspec.json.Decoder(RunOverrides)
_inputs_decoder = msgspec.json.Decoder(dict)
# A start retried this many times when the definition is replaced between
# reading it (to check the inputs) and the start: more means a definition
# replaced faster than it can be started, which is worth a 409.
START_TRIES = 5


@dataclass(frozen=True)
class Started:
    run_id: str
    number: Optional[int]
    replayed: bool


@dataclass(frozen=True)
class When:
    """When a run starts (a time, or a delay from the start) and until when
    it may (a time, or a span from the start); None: at once, forever."""

    scheduled_at_ms: Optional[int] = None
    delay_ms: Optional[int] = None
    expires_at_ms: Optional[int] = None
    expires_in_ms: Optional[int] = None

    def args(self) -> list:
        return ["" if v is None else v for v in (self.scheduled_at_ms, self.delay_ms, self.expires_at_ms,
                                                  self.expires_in_ms)] + [limits.MAX_SCHEDULE_AHEAD_SECS * 1000]


def _keeps(keeps: Optional[dict[str, str]]) -> Any:
    return _encode(keeps) if keeps else ""


def checked_inputs(declared: Mapping[str, InputSpec], given: Mapping[str, Any], wf: str) -> dict[str, Any]:
    """The run's inputs as the declared ones type them, or 422 naming the input."""
    try:
        inputs = resolve(declared, given, wf)
    except InputError as exc:
        raise Unprocessable("invalid_input", str(exc), {"field": exc.field}) from None
    problem = check_bounds(inputs)
    if problem is not None:
        raise Unprocessable("invalid_input", str(problem), {"field": problem.field})
    return inputs


def control_args(run: str, wf: str, triggered_by: str, inputs: Mapping[str, Any], tags: Mapping[str, str],
                 definition: Optional[Definition], concurrency_key: Optional[str] = None) -> list:
    """The start script's last arguments: the run's concurrency groups
    rendered for `definition` (see groups.render_groups; a bad render is a
    422 naming the field), and the most new runs a paused workflow holds."""
    groups = render_groups(definition.concurrency if definition else None, definition.specs if definition else {},
                           run_contexts(run, wf, triggered_by, inputs, tags), concurrency_key)
    if concurrency_key is not None:
        groups["key"] = concurrency_key  # kept, so a restart joins the same group
    return [_encode(groups).decode() if groups else "", limits.MAX_HELD_RUNS]


def paused_refusal(res: list, wf: str) -> Optional[Conflict]:
    """The start script's refusal of a new run by a paused workflow, if it is one."""
    if res[0] == "paused":
        return Conflict("workflow_paused", f"workflow {wf!r} is paused and refuses new runs (new_runs: skip);"
                        f" resume it first (rota resume --workflow {wf})", {"workflow_id": wf})
    if res[0] == "held_full":
        return Conflict("too_many_waiting_runs", f"workflow {wf!r} is paused and {res[1]} new runs wait for it"
                        f" already; resume it (rota resume --workflow {wf}) or cancel some",
                        {"workflow_id": wf, "limit": int(res[1])})
    return None


class StartsMixin(StoreBase):
    async def current_definition(self, wf: str) -> tuple[str, Optional[Definition]]:
        """(the workflow's current version, its definition); 404 if none."""
        ver = await self.redis.hget(self.key("wf", wf), "ver")
        if ver is None:
            raise NotFound("workflow_not_found", f"no workflow {wf!r}")
        return ver, await self.definition(wf, ver)

    def _overridden(self, wf: str, ver: str, definition: Optional[Definition],
                    overrides: Optional[RunOverrides]) -> list:
        """The start script's override arguments: the version of the run's
        own, the overrides, and each job's overridden record."""
        if overrides is None or definition is None:
            return ["", "", 0]
        specs = [ovr.apply(definition.specs[job], overrides) for job in definition.jobs]
        return [ovr.version(ver, overrides), _encode(overrides), len(specs), *job_records(specs, bool(definition.env))]

    async def start_run(
        self, wf: str, *, triggered_by: str = "api", inputs: Optional[dict[str, Any]] = None,
        tags: Optional[dict[str, str]] = None, seed: bool = False, idempotency_key: str = "",
        request_hash: str = "", when: When = When(), overrides: Optional[RunOverrides] = None, owner: str = "",
        keeps: Optional[dict[str, str]] = None, concurrency_key: Optional[str] = None,
    ) -> Started:
        """A new run of the workflow's current definition. `seed`: seed 002's
        `run`, refused (409) while the latest run is active. The inputs are
        checked against the version started, and its concurrency groups
        rendered for it, atomically: a definition replaced meanwhile is read
        and checked again. `owner`: the calling API token's id ('' with auth
        off), whose cap a kept idempotency key counts against. `keeps`:
        fields the run keeps (start.lua: idemk, the client's own key; batch,
        the bulk call that started it). `concurrency_key`: the run's
        concurrency group by name (Strait's per-run key, see
        groups.render_groups)."""
        overrides = ovr.checked(overrides)
        for _ in range(START_TRIES):
            ver, definition = await self.current_definition(wf)
            run_inputs = checked_inputs(definition.inputs if definition else {}, inputs or {}, wf)
            run = str(uuid.uuid4())
            res = await self._call("start", wf, run, triggered_by, _encode(run_inputs), _encode(tags or {}),
                                   self.retention_secs, "seed" if seed else "new", idempotency_key, request_hash,
                                   self.idempotency_ttl_secs, "", "", 0, 0, 0, owner, self.max_idempotency_keys,
                                   ver, "", *when.args(), _keeps(keeps),
                                   *self._overridden(wf, ver, definition, overrides),
                                   *control_args(run, wf, triggered_by, run_inputs, tags or {}, definition,
                                                 concurrency_key))
            if res[0] != "changed":
                return await self._name_new(self._started(res, wf))
        raise Conflict("workflow_changing", f"workflow {wf!r} was replaced {START_TRIES} times while starting a"
                       " run; try again")

    def _started(self, res: list, wf: str) -> Started:
        refusal = paused_refusal(res, wf)
        if refusal is not None:
            raise refusal
        if res[0] == "limit":
            raise limit_exceeded(res[1], res[2])
        if res[0] == "not_found":
            raise NotFound("workflow_not_found", f"no workflow {wf!r}")
        if res[0] == "run_not_found":
            raise NotFound("run_not_found", "the run to restart is gone (purged meanwhile)")
        if res[0] == "active":
            raise Conflict("workflow_active", f"workflow {wf!r}'s latest run is still going;"
                           f" wait for it (rota run {wf} --wait) or cancel it (rota cancel {wf})",
                           {"run_id": res[1]})
        if res[0] == "idem_reused":
            raise Unprocessable("idempotency_key_reused",
                                "this Idempotency-Key was used for a different request; use a new key",
                                {"field": "Idempotency-Key", "run_id": res[1]})
        if res[0] == "too_far":
            raise Unprocessable("invalid_body", f"a run may be scheduled at most {limits.MAX_SCHEDULE_AHEAD_SECS}"
                                f" seconds ahead (until {res[1]} ms)", {"field": "scheduled_at"})
        if res[0] == "expires_first":
            raise Unprocessable("invalid_body", "expires_at must be in the future and after scheduled_at",
                                {"field": "expires_at", "now_ms": int(res[1])})
        if res[0] not in ("ok", "replayed"):
            raise AssertionError(res)
        return Started(res[1], int(res[2]) if res[0] == "ok" else None, res[0] == "replayed")

    async def _name_new(self, started: Started) -> Started:
        """A new run's run-name is rendered once it has its number."""
        if not started.replayed:
            await self.name_run(started.run_id)  # type: ignore[attr-defined]
        return started

    async def run_workflow(self, wf: str) -> str:
        """Seed 002's `run`: a new run, unless the latest one is still going."""
        return (await self.start_run(wf, seed=True)).run_id

    async def restart_run(
        self, run: str, *, overrides: Optional[RunOverrides] = None, tags: Optional[dict[str, str]] = None,
        when: When = When(), idempotency_key: str = "", request_hash: str = "", owner: str = "",
        triggered_by: str = "restart", keeps: Optional[dict[str, str]] = None,
    ) -> Started:
        """A new run (`triggered_by: restart`) of the run's definition version
        (the one its overrides were applied to), with its inputs and tags,
        and its overrides with `overrides` merged over them. `owner`,
        `keeps`: as start_run's. A replay (Strait's) is a restart
        `triggered_by: retry`. It joins the concurrency groups its run would
        (rendered again, its `concurrency_key` kept)."""
        wf, ver, bver, inputs, old_tags, old, ckey = await self.redis.hmget(
            self.key("run", run), ["wf", "ver", "bver", "inputs", "tags", "ovr", "ckey"])
        if wf is None:
            raise NotFound("run_not_found", f"no run {run!r}")
        base = bver or ver
        definition = await self.definition(wf, base)
        if definition is None:
            raise NotFound("run_not_found", f"run {run!r} is gone (purged meanwhile)")
        wanted = ovr.merged(_overrides_decoder.decode(old) if old else None, ovr.checked(overrides))
        tag_json = _encode(tags) if tags is not None else (old_tags or "{}")
        new = str(uuid.uuid4())
        res = await self._call("start", wf, new, triggered_by, inputs or "{}", tag_json,
                               self.retention_secs, "restart", idempotency_key, request_hash,
                               self.idempotency_ttl_secs, "", "", 0, 0, 0, owner, self.max_idempotency_keys,
                               base, run, *when.args(), _keeps(keeps),
                               *self._overridden(wf, base, definition, wanted),
                               *control_args(new, wf, triggered_by, _inputs_decoder.decode(inputs or "{}"),
                                             _inputs_decoder.decode(tag_json), definition, ckey))
        return await self._name_new(self._started(res, wf))

    async def reschedule_run(self, run: str, when: When) -> int:
        """A delayed run's new start time (epoch ms); at or before now, it starts."""
        res = await self._call("reschedule", run, "" if when.scheduled_at_ms is None else when.scheduled_at_ms,
                               "" if when.delay_ms is None else when.delay_ms,
                               limits.MAX_SCHEDULE_AHEAD_SECS * 1000, limits.MAX_HELD_RUNS)
        if res[0] == "not_found":
            raise NotFound("run_not_found", f"no run {run!r}")
        if res[0] == "not_delayed":
            raise Conflict("run_not_delayed", f"run {run!r} has {res[1]}: only a delayed run can be rescheduled")
        if res[0] == "too_far":
            raise Unprocessable("invalid_body", f"a run may be scheduled at most {limits.MAX_SCHEDULE_AHEAD_SECS}"
                                f" seconds ahead (until {res[1]} ms)", {"field": "scheduled_at"})
        if res[0] == "expires_first":
            raise Unprocessable("invalid_body", f"the run expires at {res[1]} ms, before that time",
                                {"field": "scheduled_at", "expires_at": int(res[1])})
        return int(res[1])
