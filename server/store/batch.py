"""rota's batch protocol: several claims, a worker's results with its next
claim, and one heartbeat for all its leases, each one script call. Each
runs the single forms' own scripts (see `--- @use` in server/scripts.py),
so leasing, fencing, replays and refusals are theirs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..errors import ApiError
from ..models import ClaimResponse
from .leases import LeasesMixin, claim_refused, complete_args, complete_result, fail_args, offered_labels, result_of


@dataclass(frozen=True)
class ClaimArgs:
    """A claim of up to len(lease_ids) jobs (one lease id per job wanted)."""

    worker_id: str
    labels: list[str]
    ttl_secs: int
    lease_ids: list[str]
    owner: str = ""  # the claiming token's id ('' with auth off)
    claim_id: str = ""
    exclusive: bool = False


@dataclass(frozen=True)
class Completed:
    lease_id: str
    outputs: dict[str, str]
    result_data: Any = None


@dataclass(frozen=True)
class Failed:
    lease_id: str
    error: str
    retryable: bool
    error_type: str = ""
    error_stack: str = ""


@dataclass(frozen=True)
class Settled:
    """What became of one result: (outcome, replayed), or the error the
    single call would have raised."""

    lease_id: str
    outcome: Optional[str] = None
    replayed: bool = False
    error: Optional[ApiError] = None


@dataclass(frozen=True)
class Renewal:
    """One lease's heartbeat: live | cancelled | lost | waiting | forbidden."""

    lease_id: str
    status: str
    expires_at_ms: Optional[int] = None
    run_id: str = ""
    job_id: str = ""
    now_ms: int = 0


class BatchMixin(LeasesMixin):
    def _claim_argv(self, claim: ClaimArgs) -> list:
        return [claim.worker_id, offered_labels(claim.labels, claim.exclusive), claim.ttl_secs, claim.owner,
                claim.claim_id, self.max_workers, *claim.lease_ids]

    async def _claimed(self, res: list, claim: ClaimArgs) -> list[ClaimResponse]:
        claim_refused(res[0], claim.worker_id, self.max_workers)
        for reply in res[1:]:
            self._count_claim(reply, claim.lease_ids)
        return [await self._leased(reply, claim.worker_id) for reply in res[1:]]

    async def claim_many(self, claim: ClaimArgs) -> list[ClaimResponse]:
        """Up to len(claim.lease_ids) jobs, best first, each under its own
        lease; sent again with the same claim_id (its reply lost), the
        leases still live come back instead of new ones."""
        return await self._claimed(await self._call("claim_many", *self._claim_argv(claim)), claim)

    async def results(self, items: list[Completed | Failed], caller: str = "*", claim: Optional[ClaimArgs] = None,
                      *, strict: bool = False, max_output_bytes: int = 1 << 20
                      ) -> tuple[list[Settled], list[ClaimResponse]]:
        """Takes each result as complete()/fail() would, then leases the
        worker's next jobs with `claim`, all in one script. `strict`: claim
        only if every result was taken (a single result with `next`, which
        answers a refusal with its error alone)."""
        argv: list = [int(strict), len(items)]
        for item in items:
            if isinstance(item, Completed):
                args = complete_args(self, item.lease_id, item.outputs, caller, item.result_data, max_output_bytes)
                argv += ["complete", len(args), *args]
            else:
                args = fail_args(self, item.lease_id, item.error, item.retryable, caller, item.error_type,
                                 item.error_stack)
                argv += ["fail", len(args), *args]
        if claim is not None:
            argv += self._claim_argv(claim)
        replies, claimed = await self._call("results", *argv)
        for item, reply in zip(items, replies):
            if reply[0] == "ok":
                self.tally.result(reply[2], reply[3], isinstance(item, Completed))
        settled = [_settled(item, reply) for item, reply in zip(items, replies)]
        return settled, (await self._claimed(claimed, claim) if claim is not None and claimed else [])

    async def heartbeat_many(self, lease_ids: list[str], caller: str = "*", min_secs: int = 0) -> list[Renewal]:
        """Renews every lease as heartbeat() would, in one script."""
        replies = await self._call("heartbeat_many", caller, min_secs, *lease_ids)
        out = []
        for lease_id, res in zip(lease_ids, replies):
            if res[0] == "ok":
                out.append(Renewal(lease_id, "cancelled" if res[1] == 1 else "live", int(res[2]), res[3], res[4],
                                   int(res[5])))
            else:
                out.append(Renewal(lease_id, res[0] if res[0] in ("forbidden", "waiting") else "lost"))
        return out


def _settled(item: Completed | Failed, reply: list) -> Settled:
    try:
        if isinstance(item, Completed):
            outcome, replayed = complete_result(reply, item.lease_id)
        else:
            outcome, replayed = result_of(reply, item.lease_id)
    except ApiError as exc:
        return Settled(item.lease_id, error=exc)
    return Settled(item.lease_id, outcome, replayed)

