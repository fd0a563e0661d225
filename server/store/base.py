"""What every part of the store shares: the client, the key prefix, the
scripts, and the decoding of what the scripts keep.

Every state change is exactly one Lua script call (server/lua/); Python
prepares arguments, calls the script and decodes its answer. Reads (views,
listings) are plain pipelined commands; a page of a stream is one read-only
script, so it can stop at a byte bound.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Optional

import msgspec
from redis.asyncio import Redis

from .. import limits
from ..deciding.flags import decide_flags
from ..errors import LimitExceeded, Unprocessable
from ..metrics.tally import Tally
from ..models import ConcurrencySpec, JobSpec, backoff_fields
from ..models.specs import InputSpec
from ..redis_lean import LeanRedis
from ..scripts import Scripts
from ..settings import Settings
from ..singleflight import SingleFlight

_encode = msgspec.json.encode
_spec_decoder = msgspec.json.Decoder(JobSpec)
_declared_decoder = msgspec.json.Decoder(dict[str, InputSpec])
_env_decoder = msgspec.json.Decoder(dict[str, str])
_concurrency_decoder = msgspec.json.Decoder(ConcurrencySpec)


def label_key(labels: list[str]) -> str:
    return ",".join(sorted(set(labels)))


def job_meta(job: JobSpec, dynamic_env: bool = False) -> str:
    """A job's static description as the scripts keep it (see _keys.lua);
    `dynamic_env`: its workflow's env holds expressions."""
    bk, b1, b2 = backoff_fields(job.backoff)
    return "\t".join(map(str, (label_key(job.labels), job.priority, job.max_retries, bk, b1, b2,
                               job.wait_event or "", job.wait_timeout_secs or "",
                               decide_flags(job, dynamic_env))))


# What a field holds when a document leaves it out: a stored spec leaves
# these out too (see stored_spec).
_SPEC_DEFAULTS = {f.encode_name: msgspec.to_builtins(f.default) for f in msgspec.structs.fields(JobSpec)
                  if f.default is not msgspec.NODEFAULT}


def stored_spec(job: JobSpec) -> str:
    """A job's spec as a definition keeps it: JSON without the fields at
    their defaults, which decoding gives back. Most jobs set a few fields
    of a dozen, and each definition holds every one of its jobs'."""
    fields = msgspec.to_builtins(job)
    return _encode({k: v for k, v in fields.items() if k not in _SPEC_DEFAULTS or _SPEC_DEFAULTS[k] != v}).decode()


def job_records(jobs: list[JobSpec], dynamic_env: bool = False) -> list[str]:
    """Each job of a definition as the scripts keep it (`j:<job>`, see
    _keys.lua): id, then one field, its static description (job_meta),
    needs, dependents and spec, a line each (no part holds a newline: JSON
    escapes it, ids and labels never have one). `dynamic_env`: the
    workflow's env holds expressions."""
    dependents: dict[str, list[str]] = {j.id: [] for j in jobs}
    for job in jobs:
        for need in job.needs:
            dependents[need].append(job.id)
    args = []
    for job in jobs:
        args += [job.id, "\n".join((job_meta(job, dynamic_env), ",".join(job.needs), ",".join(dependents[job.id]),
                                    stored_spec(job)))]
    return args


def spec_of_record(record: str) -> JobSpec:
    return _spec_decoder.decode(record.split("\n", 3)[3])


def digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


def check_size(field: str, data: bytes, limit: int) -> None:
    if len(data) > limit:
        raise Unprocessable("too_large", f"{field} is {len(data)} bytes encoded; the limit is {limit}",
                            {"field": field, "limit": limit, "size": len(data)})


# A script's {'limit', what, cap}: which per-token cap refused, in the
# caller's words (the setting that raises it is named by LimitExceeded).
_LIMITS = {
    "workers": ("MAX_WORKERS_PER_TOKEN",
                "this token holds as many worker ids as it may: a worker stopped cleanly (or removed: rota"
                " workers --prune) is forgotten ten minutes later, one never seen again after RETENTION_SECS;"
                " reuse worker ids (--worker-id)"),
    "oneoffs": ("MAX_ONEOFF_WORKFLOWS_PER_TOKEN",
                "this token holds as many one-off workflows as it may: each goes RETENTION_SECS after its run"
                " finished; delete finished ones, or define the workflow once under an id (PUT) and start runs"
                " of it"),
    "idem": ("MAX_IDEMPOTENCY_KEYS_PER_TOKEN",
             "this token holds as many live Idempotency-Keys as it may (each is kept 24 h after it created"
             " something); retry once older ones have expired"),
}


def limit_exceeded(what: str, cap) -> LimitExceeded:
    setting, message = _LIMITS[what]
    return LimitExceeded(setting, int(cap), message)


def ms(value: Optional[str]) -> Optional[int]:
    return int(value) if value not in (None, "") else None


class Definition:
    """One version of a workflow's definition, decoded: versions never
    change, so each process keeps the ones it reads."""

    __slots__ = ("name", "trigger", "jobs", "specs", "inputs", "env", "run_name", "concurrency")

    def __init__(self, row: dict):
        self.name = row.get("name", "")
        self.trigger = row.get("trigger", "")
        # the workflow's env when it holds expressions, and its run-name
        self.env: dict[str, str] = _env_decoder.decode(row["wenv"]) if row.get("wenv") else {}
        self.run_name: str = row.get("rname", "")
        self.jobs = [j for j in row.get("jobs", "").split(",") if j]
        self.specs = {job: spec_of_record(row[f"j:{job}"]) for job in self.jobs if f"j:{job}" in row}
        # `workflow_dispatch: inputs:` (a version stored before them has none)
        self.inputs = _declared_decoder.decode(row["inputs"]) if row.get("inputs") else {}
        # the workflow-level `concurrency:` (a job's is in its spec)
        self.concurrency = _concurrency_decoder.decode(row["wcc"]) if row.get("wcc") else None


class StoreBase:
    def __init__(
        self,
        redis: Redis,
        namespace: str = "rota",
        retention_secs: int = 7 * 86_400,
        log_maxlen: int = 10_000,
        idempotency_ttl_secs: int = 86_400,
        result_replay_secs: int = 900,
        log_max_bytes: int = 16 * 1024 * 1024,
        log_max_chunk_bytes: int = 256 * 1024,
        max_workers: int = 10_000,
        max_oneoffs: int = 10_000,
        max_idempotency_keys: int = 100_000,
        max_output_bytes: int = 1024 * 1024,
        lean: Optional[LeanRedis] = None,
    ):
        self.redis = redis
        self.prefix = "{" + namespace + "}:"
        self.retention_secs = retention_secs
        self.log_maxlen = log_maxlen
        self.idempotency_ttl_secs = idempotency_ttl_secs
        self.result_replay_secs = result_replay_secs
        self.log_max_bytes = log_max_bytes
        self.log_max_chunk_bytes = log_max_chunk_bytes
        # per API token (see _quota.lua)
        self.max_workers = max_workers
        self.max_oneoffs = max_oneoffs
        self.max_idempotency_keys = max_idempotency_keys
        self.max_output_bytes = max_output_bytes  # a matrix job's merged outputs too
        # what this process counted since its last flush (server/metrics/)
        self.tally = Tally()
        self.scripts = Scripts(redis, self.prefix, lean, self.tally)
        self._reads = SingleFlight()
        self._definitions: OrderedDict[tuple[str, str], Definition] = OrderedDict()

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings, lean: Optional[LeanRedis] = None):
        """The one place settings become a store, so a server and a standalone
        reaper on the same Redis always agree on namespace and retention.
        `lean`: the scripts' own connection (server/redis_lean.py)."""
        return cls(redis, settings.namespace, settings.retention_secs, settings.log_max_chunks, lean=lean,
                   result_replay_secs=settings.result_replay_secs, log_max_bytes=settings.log_max_bytes,
                   log_max_chunk_bytes=settings.log_max_chunk_bytes, max_workers=settings.max_workers_per_token,
                   max_oneoffs=settings.max_oneoff_workflows_per_token,
                   max_idempotency_keys=settings.max_idempotency_keys_per_token,
                   max_output_bytes=settings.max_output_bytes)

    @property
    def wake_channel(self) -> str:
        return self.prefix + "wake"

    def job_channel(self, run: str, job: str) -> str:
        return f"{self.prefix}j:{run}:{job}"

    def run_channel(self, run: str) -> str:
        return f"{self.prefix}r:{run}"

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def _call(self, name: str, *args) -> list:
        """Runs a script; the jobs it left to decide are decided before this
        returns (server/store/deciding.py)."""
        reply, pending = await self.scripts.call_deciding(name, *args)
        if pending:
            await self.decide_all(pending)  # type: ignore[attr-defined]
        return reply

    async def stream_page(self, key: str, cursor: str = "", *, backward: bool = False,
                          max_bytes: int = limits.LOG_PAGE_BYTES, count: int = limits.LOG_PAGE_CHUNKS,
                          entry_bytes: Optional[int] = None) -> tuple[list, bool]:
        """([(id, {field: value})], more) of the stream at `key` (without
        the prefix), after `cursor` (or before it, `backward`; '' for the
        start, or the end). `entry_bytes`: the largest entry expected, which
        sets how many entries one step of the script holds."""
        step = max(1, limits.STREAM_SCAN_BYTES // (entry_bytes or self.log_max_chunk_bytes))
        res = await self._call("stream_page", key, "before" if backward else "after", cursor, max_bytes,
                               count, step)
        entries = [(eid, dict(zip(flat[::2], flat[1::2]))) for eid, flat in res[1:]]
        return entries, res[0] == 1

    async def now_ms(self) -> int:
        seconds, micros = await self.redis.time()
        return seconds * 1000 + micros // 1000

    async def definition(self, wf: str, ver: str) -> Optional[Definition]:
        cached = self._definitions.get((wf, ver))
        if cached is not None:
            self._definitions.move_to_end((wf, ver))
            return cached
        row = await self.redis.hgetall(self.key("def", wf, ver))
        if not row:
            return None
        found = self._definitions[(wf, ver)] = Definition(row)
        if len(self._definitions) > 256:
            self._definitions.popitem(last=False)
        return found

    async def run_specs(self, head: dict) -> dict[str, JobSpec]:
        """Every job's spec in a run: its definition's, plus the jobs spawned
        into it (kept with the run, since no definition has them)."""
        d = await self.definition(head["wf"], head["ver"])
        specs = d.specs if d else {}
        if head.get("spawned"):
            spawned = await self.redis.hgetall(self.key("rdef", head["id"]))
            specs = {**specs, **{f[2:]: _spec_decoder.decode(v) for f, v in spawned.items() if f.startswith("s:")}}
        return specs

    async def job_spec(self, run: str, wf: str, ver: str, spawned: bool, job: str) -> Optional[JobSpec]:
        """One job's spec in a run (see run_specs), reading no more than it."""
        d = await self.definition(wf, ver)
        if d and job in d.specs:
            return d.specs[job]
        raw = await self.redis.hget(self.key("rdef", run), f"s:{job}") if spawned else None
        return _spec_decoder.decode(raw) if raw else None

    async def _xread(self, key: str, after: str, count: Optional[int]) -> list:
        """[(id, fields)] after `after`, oldest first."""
        res = await self.redis.xread({key: after}, count=count)
        if not res:
            return []
        # redis-py gives a list of [key, entries] (RESP2) or a dict (RESP3)
        return res[0][1] if isinstance(res, list) else next(iter(res.values()))[0]
