"""What the dashboard asks about its own session, on both stores: who the
token is (GET /api/whoami), and stream tickets (POST /api/stream-tickets),
which let a browser's EventSource, which cannot send a header, open one
event stream for a minute without a token in the URL."""

from __future__ import annotations

import logging

import pytest

from server import auth as auth_module
from server import limits
from server.logconfig import NoQuery
from tests.test_api import assert_error
from tests.test_auth import ADMIN, bearer, make_token

WORKFLOW = {"name": "ci", "jobs": [{"id": "a", "command": "true"}]}


async def started_run(api, headers=ADMIN) -> str:
    resp = await api.post("/api/workflows", params={"run": "true"}, json=WORKFLOW, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()["latest_run_id"]


async def finish(api, run: str) -> None:
    """Claims and completes the run's one job, so its streams end at once."""
    claim = await api.post("/api/jobs/claim", json={"worker_id": "w1"}, headers=ADMIN)
    assert claim.status_code == 200 and claim.json()["lease"]["run_id"] == run, claim.text
    done = await api.post(f"/api/jobs/{claim.json()['lease']['lease_id']}/complete", json={}, headers=ADMIN)
    assert done.status_code == 200, done.text


async def ticket_for(api, path: str, headers) -> dict:
    resp = await api.post("/api/stream-tickets", json={"path": path}, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


# ---- whoami ---------------------------------------------------------------------------


async def test_whoami_names_the_token_and_what_it_may_do(auth_api):
    reader = await make_token(auth_api, "read", name="dash")
    me = (await auth_api.get("/api/whoami", headers=bearer(reader["token"]))).json()
    assert me == {"auth": True, "token_id": reader["id"], "name": "dash", "scopes": ["read"],
                  "expires_at_ms": None}
    submitter = await make_token(auth_api, "submit", expires_in_secs=3600)
    me = (await auth_api.get("/api/whoami", headers=bearer(submitter["token"]))).json()
    assert me["scopes"] == ["read", "submit"] and me["expires_at_ms"] == submitter["expires_at_ms"]
    me = (await auth_api.get("/api/whoami", headers=ADMIN)).json()
    assert me["token_id"] == "admin" and me["scopes"] == ["admin", "read", "submit", "worker"]


async def test_whoami_with_auth_off_says_so(api):
    me = (await api.get("/api/whoami")).json()
    assert me["auth"] is False and me["token_id"] is None and "admin" in me["scopes"]


async def test_whoami_needs_the_read_scope(auth_api):
    worker = await make_token(auth_api, "worker")
    assert_error(await auth_api.get("/api/whoami", headers=bearer(worker["token"])), 403, "forbidden")
    assert_error(await auth_api.get("/api/whoami"), 401, "unauthenticated")


# ---- stream tickets -------------------------------------------------------------------


async def test_a_ticket_opens_its_stream_without_a_header(auth_api):
    run = await started_run(auth_api)
    await finish(auth_api, run)
    reader = await make_token(auth_api, "read")
    path = f"/api/runs/{run}/events/stream"
    got = await ticket_for(auth_api, path, bearer(reader["token"]))
    assert got["path"] == path and got["ticket"].startswith("rots_")
    assert got["expires_at_ms"] > 0 and got["ttl_secs"] == limits.STREAM_TICKET_SECS
    resp = await auth_api.get(path, params={"ticket": got["ticket"]})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    assert "event: end" in resp.text
    # again within its minute (EventSource reconnects with the same URL)
    assert (await auth_api.get(path, params={"ticket": got["ticket"]})).status_code == 200


async def test_a_ticket_opens_a_job_log_stream(auth_api):
    run = await started_run(auth_api)
    await finish(auth_api, run)
    path = f"/api/runs/{run}/jobs/a/logs/stream"
    got = await ticket_for(auth_api, path, ADMIN)
    resp = await auth_api.get(path, params={"ticket": got["ticket"], "attempt": "0"})
    assert resp.status_code == 200 and "event: end" in resp.text


async def test_a_ticket_is_good_for_its_own_path_only(auth_api):
    run = await started_run(auth_api)
    other = await started_run(auth_api)
    ticket = (await ticket_for(auth_api, f"/api/runs/{run}/events/stream", ADMIN))["ticket"]
    err = assert_error(await auth_api.get(f"/api/runs/{other}/events/stream", params={"ticket": ticket}),
                       401, "unauthenticated")
    assert "ticket" in err["message"]
    assert_error(await auth_api.get(f"/api/runs/{run}/jobs/a/logs/stream", params={"ticket": ticket}),
                 401, "unauthenticated")


async def test_a_ticket_opens_nothing_but_a_stream(auth_api):
    run = await started_run(auth_api)
    ticket = (await ticket_for(auth_api, f"/api/runs/{run}/events/stream", ADMIN))["ticket"]
    for method, path in (("GET", f"/api/runs/{run}"), ("GET", f"/api/runs/{run}/events"),
                         ("POST", f"/api/runs/{run}/cancel"), ("GET", "/api/tokens")):
        resp = await auth_api.request(method, path, params={"ticket": ticket})
        assert_error(resp, 401, "unauthenticated")
    assert (await auth_api.get(f"/api/runs/{run}", headers=ADMIN)).json()["status"] == "queued"


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # another MAC
    lambda t: t.replace("rots_", "rots_9", 1),  # another expiry
    lambda t: "rots_",
    lambda t: "rots_1.2",
    lambda t: "nonsense",
    lambda t: "rots_" + "9" * 30 + ".admin." + "A" * 43,
])
async def test_a_forged_or_mangled_ticket_is_refused(auth_api, mangle):
    run = await started_run(auth_api)
    path = f"/api/runs/{run}/events/stream"
    ticket = (await ticket_for(auth_api, path, ADMIN))["ticket"]
    assert_error(await auth_api.get(path, params={"ticket": mangle(ticket)}), 401, "unauthenticated")


async def test_an_expired_ticket_is_refused(auth_api, monkeypatch):
    run = await started_run(auth_api)
    path = f"/api/runs/{run}/events/stream"
    ticket = (await ticket_for(auth_api, path, ADMIN))["ticket"]
    now = auth_module._now_ms()
    monkeypatch.setattr(auth_module, "_now_ms", lambda: now + limits.STREAM_TICKET_SECS * 1000 + 1)
    err = assert_error(await auth_api.get(path, params={"ticket": ticket}), 401, "unauthenticated")
    assert "expired" in err["message"]


async def test_a_revoked_token_takes_its_tickets_with_it(auth_api):
    run = await started_run(auth_api)
    await finish(auth_api, run)
    reader = await make_token(auth_api, "read")
    path = f"/api/runs/{run}/events/stream"
    ticket = (await ticket_for(auth_api, path, bearer(reader["token"])))["ticket"]
    assert (await auth_api.delete(f"/api/tokens/{reader['id']}", headers=ADMIN)).status_code == 200
    assert_error(await auth_api.get(path, params={"ticket": ticket}), 401, "unauthenticated")


async def test_a_stream_open_by_ticket_ends_when_its_token_is_revoked(auth_app, auth_api):
    import asyncio

    run = await started_run(auth_api)
    reader = await make_token(auth_api, "read")
    path = f"/api/runs/{run}/jobs/a/logs/stream"
    ticket = (await ticket_for(auth_api, path, bearer(reader["token"])))["ticket"]
    tail = asyncio.create_task(auth_api.get(path, params={"ticket": ticket}))
    while auth_app.state.notifier.open_streams < 1:
        await asyncio.sleep(0.01)
    await auth_api.delete(f"/api/tokens/{reader['id']}", headers=ADMIN)
    body = (await asyncio.wait_for(tail, 10)).text
    assert "event: error" in body and "unauthenticated" in body and "event: end" not in body


async def test_a_ticket_of_an_expired_token_is_refused(auth_api, monkeypatch):
    run = await started_run(auth_api)
    reader = await make_token(auth_api, "read", expires_in_secs=1)
    path = f"/api/runs/{run}/events/stream"
    ticket = (await ticket_for(auth_api, path, bearer(reader["token"])))["ticket"]
    monkeypatch.setattr(auth_module, "_now_ms", lambda: reader["expires_at_ms"] + 1)
    assert_error(await auth_api.get(path, params={"ticket": ticket}), 401, "unauthenticated")


@pytest.mark.parametrize("path", [
    "/api/runs/x/events",  # not a stream
    "/api/runs/x",
    "/api/runs/x/events/stream?after=1-0",  # a query is not part of the path
    "/api/runs/x/events/stream/",
    "api/runs/x/events/stream",
    "/api/runs/a/b/events/stream",
    "/api/runs/" + "x" * 2000 + "/events/stream",
    "",
])
async def test_a_ticket_is_issued_for_a_stream_path_only(auth_api, path):
    err = assert_error(await auth_api.post("/api/stream-tickets", json={"path": path}, headers=ADMIN), 422)
    assert err["details"]["field"].endswith("path")


async def test_issuing_a_ticket_needs_the_read_scope(auth_api):
    worker = await make_token(auth_api, "worker")
    resp = await auth_api.post("/api/stream-tickets", json={"path": "/api/runs/x/events/stream"},
                               headers=bearer(worker["token"]))
    assert_error(resp, 403, "forbidden")


async def test_a_ticket_streams_for_a_token_that_may_read(auth_api):
    """The ticket carries read and nothing else: a submit token's ticket
    still cancels nothing (covered above), and reads what it was issued for."""
    run = await started_run(auth_api)
    await finish(auth_api, run)
    submitter = await make_token(auth_api, "submit")
    path = f"/api/runs/{run}/events/stream"
    ticket = (await ticket_for(auth_api, path, bearer(submitter["token"])))["ticket"]
    assert (await auth_api.get(path, params={"ticket": ticket})).status_code == 200


async def test_tickets_with_auth_off_are_issued_and_harmless(api):
    run = await started_run(api, headers={})
    await finish(api, run)
    path = f"/api/runs/{run}/events/stream"
    ticket = (await ticket_for(api, path, {}))["ticket"]
    assert (await api.get(path, params={"ticket": ticket})).status_code == 200


def test_the_access_log_never_shows_a_query():
    """uvicorn's access line (LOG_LEVEL=debug) carries the path with its
    query; a ticket in it would sit in the log for its minute."""
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/api/runs/r/events/stream?ticket=rots_secret&after=1-0",
                                "1.1", 200), None)
    assert NoQuery().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "GET /api/runs/r/events/stream HTTP/1.1" 200'
    assert "secret" not in record.getMessage()


async def test_a_ticket_opens_straits_stream_of_a_run(auth_api):
    run = await started_run(auth_api)
    await finish(auth_api, run)
    reader = await make_token(auth_api, "read")
    for path in (f"/v1/runs/{run}/stream", f"/v1/runs/{run}/stream/chunks"):
        got = await ticket_for(auth_api, path, bearer(reader["token"]))
        resp = await auth_api.get(path, params={"ticket": got["ticket"]})
        assert resp.status_code == 200 and "event: end" in resp.text, path
