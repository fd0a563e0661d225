"""Fleet-scale behaviour on both stores: one wake-up per ready job, claims
and results that survive a lost reply, clients that go away."""

from __future__ import annotations

import asyncio
import logging


from server.notifier import Notifier
from server import sse
from tests.test_api import assert_error

WORKFLOW = {"name": "ci", "jobs": [{"id": "a", "command": "true"}]}
TWO = {"name": "ci", "jobs": [{"id": "a", "command": "true"}, {"id": "b", "command": "true"}]}


# ---- one job, one wake-up ----------------------------------------------------------


def _notifier() -> Notifier:
    return Notifier(None, "{rota}:wake")  # type: ignore[arg-type]  # never started: fed by hand


async def test_one_ready_job_wakes_one_waiting_claim_the_longest_waiting():
    notifier = _notifier()
    with notifier.claim_waiter(["linux"]) as first, notifier.claim_waiter(["linux"]) as second, \
            notifier.claim_waiter(["linux", "gpu"]) as third:
        notifier._dispatch("{rota}:wake", "linux")
        assert [w.event.is_set() for w in (first, second, third)] == [True, False, False]
        notifier._dispatch("{rota}:wake", "linux")  # the first holds one already
        assert [w.event.is_set() for w in (first, second, third)] == [True, True, False]
        notifier._dispatch("{rota}:wake", "gpu,linux")  # only the third can take it
        assert third.token == "gpu,linux"
        notifier._dispatch("{rota}:wake", "arm")  # nobody can: nobody is woken
        assert sum(w.event.is_set() for w in (first, second, third)) == 3


async def test_a_wake_up_not_spent_is_handed_on():
    notifier = _notifier()
    with notifier.claim_waiter(["linux"]) as stayer:
        with notifier.claim_waiter(["linux"]) as leaver:
            notifier._dispatch("{rota}:wake", "")
            notifier._dispatch("{rota}:wake", "")
            assert leaver.token == "" and stayer.token == ""
            assert stayer.take_token() == "" and not stayer.event.is_set()
        # the leaver left holding its wake-up: it goes to the next claim that can use it
        assert stayer.token == "" and stayer.event.is_set()


async def test_a_job_due_later_wakes_one_claim_when_due():
    notifier = _notifier()
    with notifier.claim_waiter([]) as a, notifier.claim_waiter([]) as b:
        notifier._dispatch("{rota}:wake", "~50:")
        assert not a.event.is_set()
        await asyncio.wait_for(a.event.wait(), 5)
        await asyncio.sleep(0.05)
        assert a.token == "" and not b.event.is_set()


async def test_parked_claims_run_one_claim_script_per_new_job(app, api):
    store = app.state.store
    calls = 0
    claim = store.claim

    async def counting(*args, **kwargs):
        nonlocal calls
        calls += 1
        return await claim(*args, **kwargs)

    store.claim = counting
    parked = [asyncio.create_task(api.post("/api/jobs/claim", json={"worker_id": f"w{i}", "wait_secs": 30}))
              for i in range(40)]
    while app.state.notifier.waiting_claims < 40:
        await asyncio.sleep(0.01)
    calls = 0
    await api.post("/api/workflows?run=true", json=TWO)
    done, pending = await asyncio.wait(parked, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    while len(done) < 2:
        more, pending = await asyncio.wait(pending, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        done |= more
    claimed = sorted(t.result().json()["job"]["job_id"] for t in done)
    assert claimed == ["a", "b"]
    await asyncio.sleep(0.2)  # no further claims are woken by these two jobs
    assert calls == 2 and app.state.notifier.waiting_claims == 38
    for task in pending:
        task.cancel()


# ---- claims survive a lost reply -----------------------------------------------------


async def test_a_claim_sent_again_gets_the_same_job_and_lease(api):
    wf = (await api.post("/api/workflows?run=true", json=TWO)).json()["id"]
    body = {"worker_id": "w", "claim_id": "c-1"}
    first = (await api.post("/api/jobs/claim", json=body)).json()
    again = (await api.post("/api/jobs/claim", json=body)).json()
    assert again == first
    status = (await api.get(f"/api/workflows/{wf}")).json()
    assert sorted(j["status"] for j in status["jobs"]) == ["queued", "running"]
    other = (await api.post("/api/jobs/claim", json={"worker_id": "w", "claim_id": "c-2"})).json()
    assert other["job"]["job_id"] != first["job"]["job_id"]
    # once the lease has ended, the claim id leases afresh (nothing left here)
    await api.post(f"/api/jobs/{first['lease']['lease_id']}/complete", json={})
    assert (await api.post("/api/jobs/claim", json=body)).json() is None


async def test_claim_ids_are_per_worker_and_checked(api):
    await api.post("/api/workflows?run=true", json=TWO)
    a = (await api.post("/api/jobs/claim", json={"worker_id": "w1", "claim_id": "same"})).json()
    b = (await api.post("/api/jobs/claim", json={"worker_id": "w2", "claim_id": "same"})).json()
    assert a["job"]["job_id"] != b["job"]["job_id"]
    err = assert_error(await api.post("/api/jobs/claim", json={"worker_id": "w", "claim_id": "has space"}), 422)
    assert err["details"]["field"] == "$.claim_id"


async def test_a_job_leased_to_a_waiting_client_gone_meanwhile_is_handed_back_unspent(app, api, monkeypatch):
    store = app.state.store
    gone, parked = asyncio.Event(), asyncio.Event()
    real_claim = store.claim

    async def claim_then_hang_up(*args, **kwargs):
        got = await real_claim(*args, **kwargs)
        if got is None:
            parked.set()  # a fruitless first attempt: the claim now waits
        else:
            gone.set()  # the client goes away just as the job is leased
        return got

    monkeypatch.setattr(store, "claim", claim_then_hang_up)
    body = b'{"worker_id": "gone", "wait_secs": 60}'
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive():
        if messages:
            return messages.pop(0)
        if not gone.is_set():
            await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/jobs/claim", "raw_path": b"/api/jobs/claim",
             "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
             "server": ("127.0.0.1", 3000), "client": ("127.0.0.1", 5000), "app": app,
             "headers": [(b"host", b"localhost"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}
    call = asyncio.create_task(app(scope, receive, send))
    # Not merely registered: on a slow machine the first attempt could
    # otherwise find the job itself and answer at once, as it should.
    await asyncio.wait_for(parked.wait(), 60)
    wf = (await api.post("/api/workflows?run=true", json={
        "name": "x", "jobs": [{"id": "a", "command": "true", "max_retries": 0}]})).json()["id"]
    await asyncio.wait_for(call, 60)
    job = (await api.get(f"/api/workflows/{wf}")).json()["jobs"][0]
    assert job["status"] == "queued" and job["attempt"] == 0
    events = (await api.get(f"/api/workflows/{wf}/events")).json()
    assert events[-1]["detail"].startswith("handed back")
    # the next claim gets it, and it runs with its whole retry budget
    lease = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()["lease"]
    assert (await api.post(f"/api/jobs/{lease['lease_id']}/complete", json={})).json()["outcome"] == "success"


async def test_a_client_gone_mid_body_is_no_error(app, caplog):
    caplog.set_level(logging.DEBUG)
    messages = [{"type": "http.request", "body": b'{"worker_id"', "more_body": True}, {"type": "http.disconnect"}]
    sent: list[dict] = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/jobs/claim", "raw_path": b"/api/jobs/claim",
             "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
             "server": ("127.0.0.1", 3000), "client": ("127.0.0.1", 5000), "app": app,
             "headers": [(b"host", b"localhost"), (b"content-type", b"application/json"),
                         (b"content-length", b"100")]}
    await app(scope, receive, send)
    assert sent[0]["status"] == 499
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("went away" in r.getMessage() for r in caplog.records)


# ---- results survive a lost reply ------------------------------------------------------


async def test_a_result_sent_again_is_answered_replayed(api):
    await api.post("/api/workflows?run=true", json=WORKFLOW)
    lid = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()["lease"]["lease_id"]
    first = (await api.post(f"/api/jobs/{lid}/complete", json={"outputs": {"k": "v"}})).json()
    assert first == {"ok": True, "lease_id": lid, "outcome": "success", "replayed": False}
    again = (await api.post(f"/api/jobs/{lid}/complete", json={"outputs": {"k": "v"}})).json()
    assert again == {"ok": True, "lease_id": lid, "outcome": "success", "replayed": True}
    # another result for the settled lease stays refused, and changes nothing
    err = assert_error(await api.post(f"/api/jobs/{lid}/complete", json={"outputs": {"k": "other"}}),
                       409, "lease_settled")
    assert err["details"]["outcome"] == "success"
    assert_error(await api.post(f"/api/jobs/{lid}/fail", json={"error": "x"}), 409, "lease_settled")


async def test_a_failure_sent_again_is_answered_with_what_it_did(api):
    await api.post("/api/workflows?run=true", json={"name": "x", "jobs": [
        {"id": "a", "command": "true", "max_retries": 1}]})
    lid = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()["lease"]["lease_id"]
    body = {"error": "exit 1", "retryable": True}
    assert (await api.post(f"/api/jobs/{lid}/fail", json=body)).json()["outcome"] == "retrying"
    again = (await api.post(f"/api/jobs/{lid}/fail", json=body)).json()
    assert again["replayed"] is True and again["outcome"] == "retrying"
    second = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()
    assert second["job"]["attempt"] == 1  # the replay did not fail a second attempt
    lid2 = second["lease"]["lease_id"]
    assert (await api.post(f"/api/jobs/{lid2}/fail", json=body)).json()["outcome"] == "failure"


async def test_a_replay_is_only_for_the_token_that_held_the_lease(auth_api):
    from tests.test_auth import ADMIN, bearer, make_token

    a = bearer((await make_token(auth_api, "worker"))["token"])
    b = bearer((await make_token(auth_api, "worker"))["token"])
    await auth_api.post("/api/workflows?run=true", json=WORKFLOW, headers=ADMIN)
    lease = (await auth_api.post("/api/jobs/claim", json={"worker_id": "wa"}, headers=a)).json()["lease"]
    lid = lease["lease_id"]
    assert (await auth_api.post(f"/api/jobs/{lid}/complete", json={}, headers=a)).status_code == 200
    assert_error(await auth_api.post(f"/api/jobs/{lid}/complete", json={}, headers=b), 403, "forbidden")
    run = bearer(lease["run_token"])
    assert (await auth_api.post(f"/api/jobs/{lid}/complete", json={}, headers=run)).json()["replayed"] is True


# ---- SSE across a store outage ----------------------------------------------------------


async def test_a_stream_ends_with_an_error_event_when_the_store_stays_away(app, api, monkeypatch):
    monkeypatch.setattr(sse, "STORE_RETRY_SECS", 0.3)
    wf = (await api.post("/api/workflows?run=true", json=WORKFLOW)).json()["id"]
    store = app.state.store
    real = store.read_logs
    calls = 0

    async def failing(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls > 1:
            raise ConnectionError("redis went away")
        return await real(*args, **kwargs)

    monkeypatch.setattr(store, "read_logs", failing)
    body = (await api.get(f"/api/workflows/{wf}/jobs/a/logs/stream")).text
    assert body.endswith("\n\n") and "event: error" in body and "retry: 2000" in body
    assert '"store_unavailable"' in body


async def test_a_stream_rides_out_a_short_store_outage(app, api, monkeypatch):
    wf = (await api.post("/api/workflows?run=true", json=WORKFLOW)).json()["id"]
    lid = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()["lease"]["lease_id"]
    chunk = {"workflow_id": wf, "job_id": "a", "sequence": 0, "data": "hello\n", "timestamp_ms": 1}
    await api.post(f"/api/jobs/{lid}/logs", json={"chunks": [chunk]})
    await api.post(f"/api/jobs/{lid}/complete", json={})
    store = app.state.store
    real = store.job_state
    calls = 0

    async def flaky(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls in (2, 3):  # the first is the route's 404 check; then two failures inside the stream
            raise ConnectionError("blip")
        return await real(*args, **kwargs)

    monkeypatch.setattr(store, "job_state", flaky)
    body = (await asyncio.wait_for(api.get(f"/api/workflows/{wf}/jobs/a/logs/stream"), 10)).text
    assert calls == 4
    assert body.count("event: log") == 1 and "event: end" in body and "event: error" not in body


# ---- identical reads share one round trip ----------------------------------------------


async def test_identical_reads_in_flight_share_one_call():
    from server.singleflight import SingleFlight

    flight, calls, gate = SingleFlight(), 0, asyncio.Event()

    async def read():
        nonlocal calls
        calls += 1
        await gate.wait()
        return ["entry"]

    readers = [asyncio.create_task(flight.do("k", read)) for _ in range(100)]
    other = asyncio.create_task(flight.do("other", read))
    await asyncio.sleep(0)
    readers[0].cancel()  # one reader leaving does not cancel the shared read
    gate.set()
    results = await asyncio.gather(*readers[1:], other)
    assert calls == 2 and all(r == ["entry"] for r in results)
    assert await flight.do("k", read) == ["entry"] and calls == 3  # a later read reads again


async def test_tails_of_one_job_share_their_reads(app, api, monkeypatch):
    wf = (await api.post("/api/workflows?run=true", json=WORKFLOW)).json()["id"]
    lid = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()["lease"]["lease_id"]
    chunk = {"workflow_id": wf, "job_id": "a", "sequence": 0, "data": "x\n", "timestamp_ms": 1}
    await api.post(f"/api/jobs/{lid}/logs", json={"chunks": [chunk]})
    await api.post(f"/api/jobs/{lid}/complete", json={})
    redis = app.state.store.redis
    xreads = 0
    real = redis.xread

    async def counting(*args, **kwargs):
        nonlocal xreads
        xreads += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(redis, "xread", counting)
    bodies = await asyncio.gather(*(api.get(f"/api/workflows/{wf}/jobs/a/logs/stream") for _ in range(20)))
    assert all(b.text.count("event: log") == 1 and "event: end" in b.text for b in bodies)
    assert xreads < 20
