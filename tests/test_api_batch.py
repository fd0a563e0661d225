"""rota's batch protocol over HTTP, on both stores: POST /api/jobs/claims,
/api/jobs/results and /api/jobs/heartbeats, and `next` on complete and
fail. Bounds are 422s naming the field, changing nothing; a run token
cannot claim; the seed protocol's answers stay as they were."""

from __future__ import annotations

import asyncio

from server import limits
from tests.test_api import assert_error
from tests.test_auth import ADMIN, bearer, make_token

CHAIN = {"name": "chain", "jobs": [{"id": "j0", "command": "true"}]
         + [{"id": f"j{i}", "command": "true", "depends_on": [f"j{i - 1}"]} for i in range(1, 4)]}


def flat(n: int, labels=()) -> dict:
    return {"name": "flat", "jobs": [{"id": f"j{i}", "command": "true", "required_labels": list(labels)}
                                     for i in range(n)]}


async def submit(api, doc: dict, headers=None) -> str:
    resp = await api.post("/api/workflows?run=true", json=doc, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


async def statuses(api, wf: str, headers=None) -> dict[str, str]:
    return {j["id"]: j["status"] for j in (await api.get(f"/api/workflows/{wf}", headers=headers)).json()["jobs"]}


async def test_a_batch_claim_answers_up_to_max_jobs_leases_with_run_tokens(api):
    wf = await submit(api, flat(5))
    resp = await api.post("/api/jobs/claims", json={"worker_id": "w", "max_jobs": 3})
    assert resp.status_code == 200, resp.text
    claims = resp.json()["claims"]
    assert [c["job"]["job_id"] for c in claims] == ["j0", "j1", "j2"]
    assert all(c["lease"]["run_token"].startswith(f"rotr_{c['lease']['lease_id']}_") for c in claims)
    rest = (await api.post("/api/jobs/claims", json={"worker_id": "w", "max_jobs": 3})).json()["claims"]
    assert len(rest) == 2
    assert (await api.post("/api/jobs/claims", json={"worker_id": "w", "max_jobs": 3})).json() == {"claims": []}
    assert set((await statuses(api, wf)).values()) == {"running"}


async def test_a_parked_batch_claim_is_woken_by_an_enqueue(api):
    parked = asyncio.create_task(api.post("/api/jobs/claims",
                                          json={"worker_id": "w", "max_jobs": 4, "wait_secs": 30}))
    await asyncio.sleep(0.05)
    await submit(api, flat(2))
    claims = (await parked).json()["claims"]
    assert 1 <= len(claims) <= 2


async def test_complete_with_next_answers_the_next_lease_and_walks_a_chain(api):
    wf = await submit(api, CHAIN)
    claim = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()
    seen = [claim["job"]["job_id"]]
    while True:
        resp = await api.post(f"/api/jobs/{claim['lease']['lease_id']}/complete",
                              json={"outputs": {"by": claim["job"]["job_id"]}, "next": {"worker_id": "w"}})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["outcome"] == "success" and body["replayed"] is False
        if not body["next"]:
            break
        (claim,) = body["next"]
        assert claim["lease"]["run_token"]
        seen.append(claim["job"]["job_id"])
    assert seen == ["j0", "j1", "j2", "j3"]
    assert set((await statuses(api, wf)).values()) == {"success"}


async def test_fail_with_next_retries_and_claims(api):
    await submit(api, {"name": "f", "jobs": [{"id": "a", "command": "x", "max_retries": 1}]})
    a = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()
    body = (await api.post(f"/api/jobs/{a['lease']['lease_id']}/fail",
                           json={"error": "boom", "retryable": True, "next": {"worker_id": "w"}})).json()
    assert body["outcome"] == "retrying"
    (again,) = body["next"]
    assert again["job"]["job_id"] == "a" and again["job"]["attempt"] == 1


async def test_without_next_the_seed_answers_are_unchanged(api):
    await submit(api, flat(1))
    a = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()
    body = (await api.post(f"/api/jobs/{a['lease']['lease_id']}/complete", json={"outputs": {}})).json()
    assert body == {"ok": True, "lease_id": a["lease"]["lease_id"], "outcome": "success", "replayed": False}


async def test_a_lost_complete_and_claim_next_reply_is_recovered_by_sending_it_again(api):
    wf = await submit(api, flat(3))
    a = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()
    request = {"outputs": {"k": "v"}, "next": {"worker_id": "w", "claim_id": "next-1", "max_jobs": 2}}
    first = (await api.post(f"/api/jobs/{a['lease']['lease_id']}/complete", json=request)).json()
    again = (await api.post(f"/api/jobs/{a['lease']['lease_id']}/complete", json=request)).json()
    assert again["replayed"] is True and again["outcome"] == "success"
    assert [c["lease"]["lease_id"] for c in again["next"]] == [c["lease"]["lease_id"] for c in first["next"]]
    assert all(c["job"]["attempt"] == 0 for c in again["next"])
    assert sorted((await statuses(api, wf)).values()) == ["running", "running", "success"]


async def test_a_refused_result_with_next_is_its_error_and_claims_nothing(api, app):
    from tests.helpers import expire

    wf = await submit(api, flat(2))
    a = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()
    await expire(app.state.store, a["lease"]["lease_id"])
    assert_error(await api.post(f"/api/jobs/{a['lease']['lease_id']}/complete",
                                json={"next": {"worker_id": "w"}}), 409, "lease_lost")
    assert sorted((await statuses(api, wf)).values()) == ["failure", "queued"]


async def test_results_answers_each_result_then_the_next_claim(api):
    wf = await submit(api, flat(4))
    claims = (await api.post("/api/jobs/claims", json={"worker_id": "w", "max_jobs": 3})).json()["claims"]
    lids = [c["lease"]["lease_id"] for c in claims]
    body = {"results": [{"lease_id": lids[0], "kind": "complete", "outputs": {"a": "1"}},
                        {"lease_id": lids[1], "kind": "fail", "error": "boom"},
                        {"lease_id": "no-such-lease", "kind": "complete"}],
            "next": {"worker_id": "w", "max_jobs": 5}}
    resp = await api.post("/api/jobs/results", json=body)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["results"][:2] == [{"lease_id": lids[0], "outcome": "success"},
                                  {"lease_id": lids[1], "outcome": "failure"}]
    assert out["results"][2]["error"]["code"] == "lease_lost"
    assert [c["job"]["job_id"] for c in out["next"]] == ["j3"]
    # sent again (its reply lost): replayed, nothing changes
    again = (await api.post("/api/jobs/results", json={"results": body["results"][:2]})).json()
    assert [r.get("replayed") for r in again["results"]] == [True, True] and again["next"] == []
    assert (await statuses(api, wf)) == {"j0": "success", "j1": "failure", "j2": "running", "j3": "running"}


async def test_batch_bounds_are_422s_naming_the_field_and_change_nothing(api, settings):
    wf = await submit(api, flat(2))
    err = assert_error(await api.post("/api/jobs/claims", json={"worker_id": "w",
                                                                "max_jobs": limits.MAX_CLAIM_JOBS + 1}), 422)
    assert err["details"]["field"] == "$.max_jobs"
    err = assert_error(await api.post("/api/jobs/claims", json={"worker_id": "w", "max_jobs": 0}), 422)
    assert err["details"]["field"] == "$.max_jobs"
    a = (await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()["lease"]["lease_id"]
    many = [{"lease_id": a, "kind": "complete"}] * (limits.MAX_RESULTS_PER_REQUEST + 1)
    err = assert_error(await api.post("/api/jobs/results", json={"results": many}), 422)
    assert err["details"]["field"] == "$.results"
    err = assert_error(await api.post("/api/jobs/heartbeats",
                                      json={"lease_ids": ["x"] * (limits.MAX_HEARTBEAT_LEASES + 1)}), 422)
    assert err["details"]["field"] == "$.lease_ids"
    err = assert_error(await api.post("/api/jobs/heartbeats", json={"lease_ids": ["x" * 129]}), 422)
    assert err["details"]["field"] == "$.lease_ids[0]"
    big = "x" * (settings.max_output_bytes + 1)
    results = [{"lease_id": a, "kind": "complete", "outputs": {"k": "v"}},
               {"lease_id": a, "kind": "fail", "error": big}]
    err = assert_error(await api.post("/api/jobs/results", json={"results": results}), 422, "result_too_large")
    assert err["details"]["field"] == "$.results[1].error"
    results = [{"lease_id": a, "kind": "complete", "outputs": {"k": big}}]
    err = assert_error(await api.post("/api/jobs/results", json={"results": results}), 422, "outputs_too_large")
    assert err["details"]["field"] == "$.results[0].outputs"
    err = assert_error(await api.post(f"/api/jobs/{a}/complete",
                                      json={"next": {"worker_id": "w", "max_jobs": 1000}}), 422)
    assert err["details"]["field"] == "$.next.max_jobs"
    assert (await statuses(api, wf)) == {"j0": "running", "j1": "queued"}


async def test_heartbeats_renew_all_and_say_which_jobs_were_cancelled(api):
    wf = await submit(api, flat(3))
    claims = (await api.post("/api/jobs/claims", json={"worker_id": "w", "max_jobs": 3})).json()["claims"]
    run = claims[0]["lease"]["run_id"]
    assert (await api.post(f"/api/runs/{run}/jobs/j1/cancel")).status_code == 202
    lids = [c["lease"]["lease_id"] for c in claims]
    beats = (await api.post("/api/jobs/heartbeats", json={"lease_ids": lids + ["gone"]})).json()["leases"]
    assert [(b["lease_id"], b["status"]) for b in beats] == [(lids[0], "live"), (lids[1], "cancelled"),
                                                            (lids[2], "live"), ("gone", "lost")]
    assert all(b["expires_at_ms"] > 0 for b in beats[:3]) and "expires_at_ms" not in beats[3]
    assert (await statuses(api, wf))["j0"] == "running"


async def test_a_long_poll_heartbeat_answers_the_moment_one_job_is_cancelled(api):
    await submit(api, flat(3))
    claims = (await api.post("/api/jobs/claims", json={"worker_id": "w", "max_jobs": 3,
                                                       "lease_ttl_secs": 600})).json()["claims"]
    lids = [c["lease"]["lease_id"] for c in claims]
    parked = asyncio.create_task(api.post("/api/jobs/heartbeats", json={"lease_ids": lids, "wait_secs": 60}))
    await asyncio.sleep(0.1)
    assert not parked.done()
    run = claims[0]["lease"]["run_id"]
    assert (await api.post(f"/api/runs/{run}/jobs/j2/cancel")).status_code == 202
    beats = (await asyncio.wait_for(parked, 30)).json()["leases"]
    assert [b["status"] for b in beats] == ["live", "live", "cancelled"]


async def test_a_run_token_cannot_claim_next_nor_use_the_batch_routes(auth_api):
    worker = (await make_token(auth_api, "worker"))["token"]
    wf = await submit(auth_api, flat(2), headers=ADMIN)
    a = (await auth_api.post("/api/jobs/claim", json={"worker_id": "w"}, headers=bearer(worker))).json()
    lid, run = a["lease"]["lease_id"], bearer(a["lease"]["run_token"])
    err = assert_error(await auth_api.post(f"/api/jobs/{lid}/complete", json={"next": {"worker_id": "w"}},
                                           headers=run), 403, "forbidden")
    assert err["details"]["field"] == "next"
    for path, body in (("claims", {"worker_id": "w"}), ("results", {"results": []}),
                       ("heartbeats", {"lease_ids": [lid]})):
        assert_error(await auth_api.post(f"/api/jobs/{path}", json=body, headers=run), 403, "forbidden")
    assert (await statuses(auth_api, wf, ADMIN)) == {"j0": "running", "j1": "queued"}
    # the worker token may, and the next lease is its own
    body = (await auth_api.post(f"/api/jobs/{lid}/complete", json={"next": {"worker_id": "w"}},
                                headers=bearer(worker))).json()
    (nxt,) = body["next"]
    other = (await make_token(auth_api, "worker"))["token"]
    beats = (await auth_api.post("/api/jobs/heartbeats", json={"lease_ids": [nxt["lease"]["lease_id"]]},
                                 headers=bearer(other))).json()["leases"]
    assert beats[0]["status"] == "forbidden"
    done = (await auth_api.post("/api/jobs/results", headers=bearer(other), json={
        "results": [{"lease_id": nxt["lease"]["lease_id"], "kind": "complete"}]})).json()
    assert done["results"][0]["error"]["code"] == "forbidden"


async def test_next_is_not_read_on_the_seeds_executor_paths(api):
    wf = await submit(api, flat(3))
    a, b = [(await api.post("/api/jobs/claim", json={"worker_id": "w"})).json()["lease"]["lease_id"]
            for _ in range(2)]
    for path in (f"/api/executions/{a}/complete", f"/sdk/v1/runs/{b}/complete"):
        resp = await api.post(path, json={"next": {"worker_id": "w"}})
        assert resp.status_code == 200 and "next" not in resp.json()
    # their answers have no place for leases: nothing was leased
    assert sorted((await statuses(api, wf)).values()) == ["queued", "success", "success"]


async def test_batch_long_polls_that_park_after_shutdown_began_answer_at_once(app, api):
    """As the seed's long-polls (tests/test_api.py): once the server drains,
    a batch claim and a batch heartbeat do not wait out their minute (the
    60 s waits are far beyond these deadlines)."""
    await submit(api, flat(1))
    lid = (await api.post("/api/jobs/claim", json={"worker_id": "holder"})).json()["lease"]["lease_id"]
    app.state.notifier.begin_shutdown()
    claim = api.post("/api/jobs/claims", json={"worker_id": "late", "max_jobs": 4, "wait_secs": 60})
    assert (await asyncio.wait_for(claim, 30)).json() == {"claims": []}
    beat = await asyncio.wait_for(api.post("/api/jobs/heartbeats", json={"lease_ids": [lid], "wait_secs": 60}), 30)
    assert beat.status_code == 200 and [b["status"] for b in beat.json()["leases"]] == ["live"]
