"""The worker's lease keeper (one heartbeat for all its leases) against the
real app in process: a lease whose job has ended and whose result is on
its way is not reported lost when the heartbeat, woken by that very
result, answers that the lease is gone."""

from __future__ import annotations

import asyncio
import logging

import msgspec

from server.models import ClaimResponse
from tests.test_worker_batch import Recorded
from worker.client.api import Client
from worker.daemon.leases import LeaseKeeper
from worker.daemon.logship import Outage


async def test_a_lease_whose_result_is_on_its_way_is_not_lost_when_the_heartbeat_says_it_ended(app, api, caplog):
    resp = await api.post("/api/workflows", json={"name": "k", "jobs": [{"id": "a", "command": "true"}]})
    assert (await api.post(f"/api/workflows/{resp.json()['id']}/run")).status_code in (200, 202)
    claim = msgspec.convert((await api.post("/api/jobs/claim", json={"worker_id": "w", "lease_ttl_secs": 600}))
                            .json(), ClaimResponse)
    transport = Recorded(app)
    keeper = LeaseKeeper(Client("http://localhost", transport=transport), Outage(), first_delay=0.0)
    stopped: list[str] = []
    keeper.add(claim.lease, "k/a", stopped.append)
    beating = asyncio.create_task(keeper.run())
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while not transport.paths("/api/jobs/heartbeats"):  # parked: it answers when the job changes
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        keeper.reporting(claim.lease.lease_id)  # the job ended; its result goes now
        with caplog.at_level(logging.DEBUG, logger="rota"):
            done = await api.post(f"/api/jobs/{claim.lease.lease_id}/complete", json={"outputs": {}})
            assert done.status_code == 200
            # the woken heartbeat's answer for it (gone) is taken as the result's doing
            while keeper.beating(claim.lease.lease_id):
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.02)
    finally:
        beating.cancel()
        await asyncio.gather(beating, return_exceptions=True)
        keeper.remove(claim.lease.lease_id)
    assert stopped == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "lost lease" in r.getMessage()]
