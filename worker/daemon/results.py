"""How a finished job's outcome reaches the server: its result (outputs,
or its failure), or the job handed back unfinished at a shutdown. Each is
retried until the server takes it or says the lease is gone (409), so a
server blip never loses a result. A result carries the worker's next
claim when the daemon gives one (rota's batch protocol): the jobs it
leased are in `next`, and a result re-sent after a lost reply carries the
same claim id, so it gets back the same leases."""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, Optional

from msgspec import UNSET

from server.models import ClaimResponse, HandedBack, NextClaim, ResultAccepted
from worker.client.api import Client
from worker.client.errors import ApiError, RotaError
from worker.daemon import protocol
from worker.daemon.logship import send_until_answered
from worker.daemon.runner import RunResult
from worker.daemon.stops import CANCELLED, LEASE_LOST, SHUTDOWN, SHUTDOWN_REASON, TIMEOUT, WAITING, SetupFailure

log = logging.getLogger("rota.worker")


def outputs_size(outputs: dict[str, str]) -> int:
    """As the server counts toward MAX_OUTPUT_BYTES: keys and values in UTF-8."""
    return sum(len(key.encode()) + len(value.encode()) for key, value in outputs.items())


class JobResults:
    """One job's reports to the server, through its lease."""

    def __init__(self, client: Client, lease_id: str, name: str, elapsed: Callable[[], float],
                 next_claim: Callable[[], Optional[NextClaim]] = lambda: None):
        self._client = client
        self.lease_id = lease_id
        self.name = name
        self._elapsed = elapsed
        self._next_claim = next_claim
        # The jobs leased with the result (its `next` claim).
        self.next: list[ClaimResponse] = []

    async def report(self, outcome: RunResult | SetupFailure, *, stop_reason: Optional[str],
                     timeout_secs: Optional[int]) -> None:
        """Report how the job ended. `stop_reason`: why the job was asked to
        stop, if it was (it may have ended by itself before it heard)."""
        if isinstance(outcome, SetupFailure):
            await self._report_failure(outcome.error, retryable=outcome.retryable)
        elif outcome.stop_reason == CANCELLED:
            # The server settled the job already and answers 409, but the
            # report releases the lease now rather than at its expiry, so
            # this worker stops showing as busy with the job.
            try:
                await self._client.fail(self.lease_id, "cancelled", False)
            except RotaError:
                pass
            log.info("cancelled %s after %.2fs", self.name, self._elapsed())
        elif outcome.stop_reason == LEASE_LOST:
            log.info("lease lost for %s after %.2fs, no result reported", self.name, self._elapsed())
        elif outcome.stop_reason == WAITING or stop_reason == WAITING:
            # (also when the job ended by itself before the heartbeat heard of the wait)
            self._log_waiting()
        elif outcome.stop_reason == TIMEOUT:
            await self._report_failure(f"timed out after {timeout_secs}s", retryable=True, error_type="timeout")
        elif outcome.stop_reason == SHUTDOWN:
            await self._hand_back(SHUTDOWN_REASON)
        elif not outcome.succeeded:
            await self._report_failure(outcome.describe_failure(), retryable=outcome.retryable)
        else:
            outputs = outcome.outputs
            nxt = self._next_claim()
            refused = await self._deliver(
                "complete", lambda: protocol.complete(self._client, self.lease_id, outputs, nxt))
            if refused is None:
                log.info("finished %s: success in %.2fs", self.name, self._elapsed())
            elif refused.status != 409:
                # Re-running the job would produce the same result (too large,
                # invalid), so fail it for good rather than let the lease expire.
                log.error("the server refused the result of %s: %s", self.name, refused)
                await self._report_failure(_refusal(refused, outputs), retryable=False)

    async def _hand_back(self, reason: str) -> None:
        """Give the job back unfinished: the server queues it again, first in
        line, without spending a retry (a rolling restart fails nothing)."""
        answers: list[HandedBack] = []

        async def send() -> HandedBack:
            answers.append(await self._client.release(self.lease_id, reason))
            return answers[-1]

        refused = await self._deliver("hand-back", send)
        if refused is None:
            outcome = answers[-1].outcome
            if outcome == "handed_back":
                log.info("handed %s back after %.2fs: it runs again, no retry spent", self.name, self._elapsed())
            else:  # handed back too often: the server counted this one as a failed attempt
                log.warning("handed %s back after %.2fs, more often than the server allows: counted as a"
                            " failed attempt (%s)", self.name, self._elapsed(), outcome)
        elif refused.status in (404, 405):
            # A server older than the hand-back call: fail the attempt, as
            # workers did before it.
            await self._report_failure(reason, retryable=True)
        elif refused.status != 409:
            log.error("the server refused the hand-back of %s: %s", self.name, refused)

    async def _report_failure(self, error: str, *, retryable: bool, error_type: str | None = None) -> None:
        nxt = self._next_claim()
        refused = await self._deliver(
            "fail", lambda: protocol.fail(self._client, self.lease_id, error, retryable, nxt, error_type))
        if refused is None:
            log.info("finished %s: failure in %.2fs: %s", self.name, self._elapsed(), error)
        elif refused.status != 409:
            log.error("the server refused the failure report of %s: %s", self.name, refused)

    async def _deliver(self, what: str,
                       send: Callable[[], Awaitable[ResultAccepted | HandedBack]]) -> ApiError | None:
        """Send a result until the server takes it (None) or refuses it (its answer).

        Retries for as long as the server is unreachable or failing, so a blip
        never loses a result; only a shutdown's drain deadline cuts this short.
        A result re-sent after a lost reply is answered `replayed`: the server
        had taken the first one, which is success, not a lost lease.
        """
        answers: list[ResultAccepted | HandedBack] = []

        async def send_once() -> None:
            answers.append(await send())

        refused = await send_until_answered(send_once, f"the {what} of {self.name}")
        if refused is not None and refused.code == "job_waiting":
            # The job exited right after asking to wait, before a heartbeat
            # heard of it: its lease is released, there is nothing to report.
            self._log_waiting()
        elif refused is not None and refused.status == 409:
            log.info("lost lease %s: the server refused its %s: %s", self.name, what, refused)
        elif answers and answers[-1].replayed:
            log.info("the server had already taken the %s of %s (its first answer was lost)", what, self.name)
        if refused is None and isinstance(answers[-1], ResultAccepted) and answers[-1].next is not UNSET:
            self.next = answers[-1].next
        return refused

    def _log_waiting(self) -> None:
        log.info("%s waits for event: lease released after %.2fs, no result reported", self.name, self._elapsed())


def _refusal(refused: ApiError, outputs: dict[str, str]) -> str:
    """The error a job fails with when the server will not take its result."""
    details = refused.details if isinstance(refused.details, dict) else {}
    if refused.code == "outputs_too_large":
        size, limit = details.get("size", outputs_size(outputs)), details.get("limit", "?")
        return (f"outputs are {size} bytes, over the server's MAX_OUTPUT_BYTES ({limit} bytes);"
                " keep large results in files or an artifact store and output where they are")
    if refused.status == 413:
        return (f"outputs are {outputs_size(outputs)} bytes, more than the server takes in one request:"
                f" {refused}")
    return f"server refused the result: {refused}"
