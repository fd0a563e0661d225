"""The worker protocol's state changes: claim, hand back, heartbeat,
complete, fail (a lease's log chunks are store/logs.py's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import msgspec

from .. import limits
from ..deciding.contexts import resolve_needs_outputs
from ..errors import Conflict, Forbidden, LeaseLost, Unprocessable
from ..inputs import text as input_text, texts as input_texts
from ..models import (
    CheckpointOut,
    ClaimResponse,
    ClaimStep,
    DecidedJob,
    HeartbeatResponse,
    JobContexts,
    JobSpec,
    Lease,
    NeedContext,
    QueuedJob,
    RetryPolicy,
    RunContext,
    StepOptions,
    StrategyContext,
)
from .base import StoreBase, digest, label_key, limit_exceeded
from .views import outputs

_encode = msgspec.json.encode
_spec_decoder = msgspec.json.Decoder(JobSpec)
_inputs_decoder = msgspec.json.Decoder(dict[str, Any])
_checkpoint_decoder = msgspec.json.Decoder(CheckpointOut)
_MISSING = object()
_decided_decoder = msgspec.json.Decoder(DecidedJob)
# a job outside a matrix: GitHub's strategy context for it (shared: only encoded)
_NO_MATRIX = StrategyContext()


def worker_taken(worker_id: str) -> Conflict:
    return Conflict("worker_id_taken",
                    f"worker id {worker_id!r} belongs to another token; choose another worker id",
                    {"worker_id": worker_id})


def lease_refused(outcome: str, lease_id: str) -> None:
    """Raises what a lease script's refusal means for the caller."""
    if outcome == "forbidden":
        raise Forbidden("this lease is held by another worker's token; only that token or the"
                        " lease's run token may use it", {"lease_id": lease_id})
    if outcome == "cancelled":
        raise Conflict("job_cancelled", "the job was cancelled; its result is not recorded",
                       {"lease_id": lease_id})
    if outcome == "waiting":
        raise Conflict("job_waiting", "the job gave up this lease to wait for an event; stop it and report"
                       " nothing: it runs again, with its checkpoint, when the event comes", {"lease_id": lease_id})
    raise LeaseLost(lease_id)


def result_of(res: list, lease_id: str) -> tuple[str, bool]:
    if res[0] in ("ok", "replayed"):
        return res[1], res[0] == "replayed"
    if res[0] == "settled":
        raise Conflict("lease_settled",
                       "this lease already settled with a different result; the first one stands",
                       {"lease_id": lease_id, "outcome": res[1]})
    lease_refused(res[0], lease_id)
    raise AssertionError(res)


_STEP_OPTIONS = ("id", "if_", "env", "shell", "working_directory", "timeout_minutes", "continue_on_error")


def _options(spec: JobSpec) -> list[StepOptions]:
    """Each step's fields beyond name and run; none when no step has any."""
    if not any(step.id or step.if_ or step.env or step.shell or step.working_directory
               or step.timeout_minutes is not None or step.continue_on_error for step in spec.steps):
        return []
    return [StepOptions(**{key: getattr(step, key) for key in _STEP_OPTIONS}) for step in spec.steps]


def offered_labels(labels: list[str], exclusive: bool) -> str:
    """What a claim script reads as the worker's labels."""
    return ("!" if exclusive else "") + label_key(labels)


def claim_refused(status: int, worker_id: str, max_workers: int) -> None:
    """Raises what a claim script's refusal of the worker id means."""
    if status == -1:
        raise worker_taken(worker_id)
    if status == -2:
        raise limit_exceeded("workers", max_workers)


def leased(res: list, worker_id: str) -> tuple[ClaimResponse, JobSpec, dict[str, Any]]:
    """A claim script's reply for a leased job, as the claim answers it
    (before Restep's input_mapping: LeasesMixin._leased), with the job's
    spec and the run's typed inputs."""
    (_, now, lease_id, ttl, run, wf, job_id, spec_json, att, enq, dly, inputs, ckpt, event, decided_json,
     number, by, tags, run_attempt, *ups) = res
    spec = _spec_decoder.decode(spec_json)
    decided = _decided_decoder.decode(decided_json) if decided_json else None
    upstream = {ups[i]: outputs(ups[i + 1]) for i in range(0, len(ups), 3)}
    run_inputs = _inputs_decoder.decode(inputs) if inputs and inputs != "{}" else {}  # typed values
    if decided is not None:
        env, name, labels, timeout = decided.env, decided.name, decided.labels, decided.timeout_secs
        continue_on_error = decided.continue_on_error
    else:
        env, name, labels, timeout = spec.env, spec.name, spec.labels, spec.timeout_secs
        continue_on_error = spec.continue_on_error is True
    contexts = JobContexts(
        needs={ups[i]: NeedContext(ups[i + 2], upstream[ups[i]]) for i in range(0, len(ups), 3)},
        inputs=run_inputs,
        matrix=decided.matrix if decided is not None else None,
        strategy=(msgspec.convert(decided.strategy, StrategyContext)
                  if decided is not None and decided.strategy else _NO_MATRIX),
        env=env if decided is not None else resolve_needs_outputs(env, upstream),
        run=RunContext(id=run, number=int(number or 0), workflow=wf, triggered_by=by,
                       tags=_inputs_decoder.decode(tags) if tags and tags != "{}" else {},
                       attempt=int(run_attempt or 1)),
    )
    job = QueuedJob(
        job_id=job_id,
        workflow_id=wf,
        run_id=run,
        command=spec.command,
        required_labels=labels,
        retry_policy=RetryPolicy(max_retries=spec.max_retries, backoff=spec.backoff),
        attempt=int(att),
        upstream_outputs=upstream,
        enqueued_at_ms=int(enq),
        delayed_until_ms=int(dly or 0),
        name=name,
        env=env,
        steps=[ClaimStep(step.name, step.run) for step in spec.steps],
        timeout_secs=timeout,
        # as text, each as its ROTA_INPUT_<NAME> (the run keeps them typed, as the contexts have them)
        inputs=input_texts(run_inputs),
        checkpoint=_checkpoint_decoder.decode(ckpt).data if ckpt else None,
        event=msgspec.json.decode(event) if event else None,
        env_resolved=decided is not None,
        contexts=contexts,
        step_options=_options(spec),
        outputs=spec.outputs,
        defaults=spec.defaults,
        continue_on_error=continue_on_error,
    )
    lease = Lease(lease_id=lease_id, job_id=job_id, workflow_id=wf, run_id=run, worker_id=worker_id,
                  ttl_secs=int(ttl), granted_at_ms=int(now))
    return ClaimResponse(job=job, lease=lease), spec, run_inputs


def complete_result(res: list, lease_id: str) -> tuple[str, bool]:
    """The complete script's reply: (outcome, replayed), or what it refused."""
    if res[0] == "too_large":
        raise Unprocessable("outputs_too_large",
                            f"outputs, with those the job set while running, are more than MAX_OUTPUT_BYTES"
                            f" ({res[1]}); nothing was recorded", {"field": "outputs", "limit": int(res[1])})
    return result_of(res, lease_id)


def complete_args(store: StoreBase, lease_id: str, outputs: dict[str, str], caller: str, result_data: Any,
                  max_output_bytes: int) -> list:
    """The complete script's ARGV (the digest tells a re-sent result from another)."""
    encoded = _encode(outputs)
    rdata = b"" if result_data is None else _encode(result_data)
    return [lease_id, caller, encoded, digest(encoded + b"|" + rdata), store.result_replay_secs, rdata,
            max_output_bytes]


def fail_args(store: StoreBase, lease_id: str, error: str, retryable: bool, caller: str, error_type: str,
              error_stack: str) -> list:
    return [lease_id, caller, error, int(retryable), digest(_encode([error, retryable])), store.result_replay_secs,
            error_type, error_stack]


@dataclass(frozen=True)
class Beat:
    """A renewed lease: the answer, and what a long-poll heartbeat watches."""

    answer: HeartbeatResponse
    run_id: str
    job_id: str
    now_ms: int


class LeasesMixin(StoreBase):
    async def claim(
        self, worker_id: str, labels: list[str], ttl_secs: int, lease_id: str, owner: str = "",
        claim_id: str = "", exclusive: bool = False,
    ) -> Optional[ClaimResponse]:
        """`lease_id` is the new lease's id, if a job is leased. `owner`: the
        claiming API token's id ('' with auth off); only it may then use the
        lease, besides the lease's own run token. `claim_id`: the client's
        id for this claim; sent again (its reply lost), it gets the same
        job and lease back while the lease lives."""
        res = await self._call("claim", worker_id, offered_labels(labels, exclusive), ttl_secs, lease_id, owner,
                               claim_id, self.max_workers)
        claim_refused(res[0], worker_id, self.max_workers)
        if res[0] != 1:
            return None
        self._count_claim(res, (lease_id,))
        return await self._leased(res, worker_id)

    def _count_claim(self, res: list, lease_ids) -> None:
        """Tallies a claim script's lease, unless it is an earlier claim's
        handed back again (a re-sent claim_id: its lease id is not one asked for)."""
        if res[2] in lease_ids:
            self.tally.claimed(int(res[1]), int(res[9] or 0), int(res[10] or 0))

    async def _leased(self, res: list, worker_id: str) -> ClaimResponse:
        """A claim script's reply for a leased job, with Restep's input_mapping resolved."""
        got, spec, typed = leased(res, worker_id)
        if spec.input_mapping:
            got.job.inputs = {**got.job.inputs,
                              **await self._mapped_inputs(got.job.run_id or "", spec.input_mapping, typed, got.job)}
        return got

    async def _mapped_inputs(self, run: str, mapping: dict[str, str], typed: dict[str, Any],
                             job: QueuedJob) -> dict[str, str]:
        """Restep's `input_mapping`, read when the job is claimed: each name
        from the run's inputs (`job.input_params.F`, F a path into their
        JSON values), a need's artifacts (`NEED.artifacts.F`: its latest
        checkpoint's field F when that is an object holding F, as Restep
        saves a step's artifacts, else its output F) or its result_data
        (`NEED.result_data.F`). A value is given as an input's text is (a
        list or an object as its JSON); one not found is left out."""
        needs = sorted({source.split(".artifacts.")[0].split(".result_data.")[0]
                        for source in mapping.values() if not source.startswith("job.input_params.")})
        async with self.redis.pipeline(transaction=False) as pipe:
            for need in needs:
                pipe.hmget(self.key("rj", run, need), ["ckat", "rdata"])
            got = await pipe.execute()
        async with self.redis.pipeline(transaction=False) as pipe:
            for need, (ckat, _) in zip(needs, got):
                pipe.hget(self.key("ckpt", run, need), ckat or "-")
            checkpoints = await pipe.execute()
        found: dict[str, tuple[Any, Any]] = {}
        for need, (_, rdata), ckpt in zip(needs, got, checkpoints):
            found[need] = (_checkpoint_decoder.decode(ckpt).data if ckpt else None,
                           msgspec.json.decode(rdata) if rdata else None)

        def walk(value: Any, path: list[str]) -> Any:
            for part in path:
                if not isinstance(value, dict) or part not in value:
                    return _MISSING
                value = value[part]
            return value

        out: dict[str, str] = {}
        for name, source in mapping.items():
            if source.startswith("job.input_params."):
                value = walk(typed, source.split(".")[2:])
            elif ".result_data." in source:
                need, _, field = source.partition(".result_data.")
                value = walk(found[need][1], field.split("."))
            else:
                need, _, field = source.partition(".artifacts.")
                value = walk(found[need][0], field.split("."))
                if value is _MISSING:
                    value = walk(job.upstream_outputs.get(need, {}), field.split("."))
            if value is not _MISSING:
                out[name] = input_text(value)
        return out

    async def release(self, lease_id: str) -> bool:
        """Hands a just-claimed job back, unrun and its attempt not counted
        (the client went away before the answer); False if the lease is gone."""
        (outcome,) = await self._call("unclaim", lease_id)
        return outcome == "ok"

    # `caller` below is Principal.lease_caller: '*' when already authorised
    # (auth off, or the lease's run token), else the calling token's id.

    async def heartbeat(self, lease_id: str, caller: str = "*", min_secs: int = 0) -> Beat:
        """Renews the lease by its TTL, or by `min_secs` if that is longer."""
        res = await self._call("heartbeat", lease_id, caller, min_secs)
        if res[0] != "ok":
            lease_refused(res[0], lease_id)
        answer = HeartbeatResponse(cancelled=res[1] == 1, lease_id=lease_id, expires_at_ms=int(res[2]))
        return Beat(answer, res[3], res[4], int(res[5]))

    async def lease_state(self, run: str, job: str, lease_id: str) -> str:
        """'running', 'cancelled', or 'gone' (the job is no longer under this
        lease: it finished, was retried or went to wait for an event)."""
        st, cur = await self.redis.hmget(self.key("rj", run, job), "st", "lease")
        if cur != lease_id:
            return "gone"
        return "cancelled" if st == "cancelled" else "running"

    # A result's answer: (what became of the job, whether this repeats a
    # result already taken). The digest tells a re-sent result from another.

    async def complete(self, lease_id: str, outputs: dict[str, str], caller: str = "*", *,
                       result_data: Any = None, max_output_bytes: int = 1 << 20) -> tuple[str, bool]:
        """`result_data`: Restep's (or Strait's `result`), kept with the job.
        Outputs the job upserted while running merge under these; together
        they must fit `max_output_bytes`."""
        res = await self._call("complete", *complete_args(self, lease_id, outputs, caller, result_data,
                                                          max_output_bytes))
        if res[0] == "ok":
            self.tally.result(res[2], res[3], True)
        return complete_result(res, lease_id)

    async def fail(self, lease_id: str, error: str, retryable: bool, caller: str = "*", *,
                   error_type: str = "", error_stack: str = "") -> tuple[str, bool]:
        res = await self._call("fail", *fail_args(self, lease_id, error, retryable, caller, error_type, error_stack))
        if res[0] == "ok":
            self.tally.result(res[2], res[3], False)
        return result_of(res, lease_id)

    async def hand_back(self, lease_id: str, reason: str = "", caller: str = "*") -> tuple[str, bool]:
        """The worker stopped before the job finished and gives it back: it
        runs again, first in its queue, without spending an attempt
        ('handed_back'), unless it was handed back more than MAX_HANDBACKS
        times since it was last retried by hand: then this counts as a
        failed attempt ('retrying' or 'failure')."""
        res = await self._call("hand_back", lease_id, caller, reason, digest(_encode(reason)),
                               self.result_replay_secs, limits.MAX_HANDBACKS)
        return result_of(res, lease_id)
