--- @include "control"
--- @include "workers"
-- Leases and the workers holding them.
--
--   lease:<id>        hash: run job wf worker ttl att granted lseq tok
--                     (tok: the id of the API token that claimed it)
--   leases            zset: lease id -> expiry
--   wleases:<worker>  set: the worker's lease ids
--   worker:<id>       hash: labels registered last_seen owner excl conc
--                     ver host wait ttl stopped
--   settled:<lease>   string: a settled lease's result, for replays

local function release_lease(lid, worker)
  redis.call('DEL', lkey(lid))
  redis.call('ZREM', P .. 'leases', lid)
  if worker and worker ~= '' then redis.call('SREM', P .. 'wleases:' .. worker, lid) end
end

-- An expired lease, applied by whichever script touches it first: a failed
-- attempt of a job still running under it (retried with backoff while its
-- budget allows). Returns whether it failed an attempt.
local function expire_lease(lid, now, run, job, worker)
  release_lease(lid, worker)
  local st, cur = unpack(jmget(jkey(run, job), 'st', 'lease'))
  if cur == lid and st == 'running' then
    -- A worker whose lease ran out unrenewed is `lost` until it is seen again.
    local wk = P .. 'worker:' .. (worker or '')
    if worker and worker ~= '' and redis.call('EXISTS', wk) == 1 then redis.call('HSET', wk, 'expired', now) end
    note(string.format('lease of job %s/%s on worker %s expired', run, job, worker or '?'))
    tally('lease_expiries')
    fail_attempt(run, job, now, 'lease expired', true, 'lost')
    return true
  end
  -- A cancelled job's log tail waits for its lease to end: tell it.
  redis.call('PUBLISH', jobchan(run, job), 'released')
  return false
end

-- Looks up a lease for heartbeat/complete/fail/logs on behalf of `caller`:
-- '*' (auth off, or the lease's own run token, checked by the server) or
-- the id of the API token calling, which must be the one that claimed it.
-- An expired lease is handled right here (as the reaper would), so the
-- answer never depends on whether a reaper happened to run first. Returns
-- the lease fields, or nil and the refusal ('lost' | 'forbidden'); a
-- refused caller changes nothing.
local function live_lease(lid, now, caller)
  local run, job, wf, worker, ttl, att, tok = unpack(redis.call('HMGET', lkey(lid),
    'run', 'job', 'wf', 'worker', 'ttl', 'att', 'tok'))
  if not run then return nil, 'lost' end
  if caller ~= '*' and caller ~= tok then return nil, 'forbidden' end
  -- A run token speaks for the worker token that claimed the lease: once
  -- that token is revoked, its leases' run tokens are refused too.
  if caller == '*' and tok and tok ~= '' and tok ~= 'admin'
      and redis.call('EXISTS', P .. 'token:' .. tok) == 0 then
    return nil, 'forbidden'
  end
  local exp = tonumber(redis.call('ZSCORE', P .. 'leases', lid) or 0)
  if exp < now then
    expire_lease(lid, now, run, job, worker)
    return nil, 'lost'
  end
  -- (with what a success needs of the job: see succeed's `row`)
  local st, cur, lout, start, jatt, deps, agg, up, cg = unpack(jmget(jkey(run, job), 'st', 'lease', 'lout', 'start',
    'att', 'deps', 'agg', 'up', 'cg'))
  if cur ~= lid then
    -- Superseded (the job was retried meanwhile): the record is garbage now.
    release_lease(lid, worker)
    return nil, 'lost'
  end
  return { run = run, job = job, wf = wf, worker = worker, ttl = tonumber(ttl), att = att, st = st, tok = tok,
           lout = lout, start = start, row = { jatt, deps, agg, up, cg } }
end

-- The start of complete and fail: takes a live lease (see live_lease) of
-- a running job back from its worker and returns it, or returns nil and
-- the refusal to send.
local function take_lease(lid, lease, now)
  release_lease(lid, lease.worker)
  if lease.st ~= 'running' then
    -- Cancelled under this lease: the worker has stopped and reported, so the
    -- lease goes now rather than at its expiry (the worker shows idle again),
    -- and the job's log tail, which waits for that, may end.
    redis.call('PUBLISH', jobchan(lease.run, lease.job), 'released')
    return nil, { lease.st }
  end
  touch_worker(lease.worker, now)
  return lease
end

local function take_lease_for_result(lid, now, caller)
  local lease, refusal = live_lease(lid, now, caller)
  if not lease then return nil, { refusal } end
  return take_lease(lid, lease, now)
end

-- A settled lease remembers its result for `ttl` seconds, so a result the
-- worker re-sends after a lost reply is answered as the first one was.
-- kind: 'complete' | 'fail'; digest: of the result sent; outcome: what
-- became of the job.
local function settle(lid, tok, kind, digest, outcome, ttl)
  redis.call('SET', P .. 'settled:' .. lid, kind .. '|' .. digest .. '|' .. (tok or '') .. '|' .. outcome,
    'EX', ttl)
end

-- The answer to a result for a lease that is gone: {'replayed', outcome}
-- when it settled with this very result, {'settled', outcome} when with
-- another, {'waiting'} when its job went to wait for an event,
-- {'forbidden'} for another token, else {'lost'}.
local function replay(lid, caller, kind, digest)
  local rec = redis.call('GET', P .. 'settled:' .. lid)
  if not rec then return { 'lost' } end
  local k, d, tok, outcome = string.match(rec, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
  if caller ~= '*' and caller ~= tok then return { 'forbidden' } end
  -- the job asked to wait for an event under this lease
  if k == 'wait' then return { 'waiting' } end
  if k ~= kind or d ~= digest then return { 'settled', outcome } end
  return { 'replayed', outcome }
end

-- The refusal for a call on a lease that live_lease refused: {'waiting'}
-- when its job went to wait for an event under it (its worker stops the
-- job and reports nothing), else the refusal itself.
local function lease_gone(lid, caller, refusal)
  if refusal == 'lost' and replay(lid, caller, '', '')[1] == 'waiting' then return { 'waiting' } end
  return { refusal }
end

-- A lease given up by its job's wait for an event, as {run, job, wf, att}
-- (kept in its settled record), so what the job printed before its worker
-- stopped it still joins its log; nil otherwise.
local function waited_lease(lid, caller)
  local rec = redis.call('GET', P .. 'settled:' .. lid)
  if not rec then return nil end
  local k, where, tok = string.match(rec, '^([^|]*)|([^|]*)|([^|]*)|')
  if k ~= 'wait' or (caller ~= '*' and caller ~= tok) then return nil end
  local run, job, wf, att = string.match(where, '^(%S+) (%S+) (%S+) (%S+)$')
  return { run = run, job = job, wf = wf, att = att, waited = true }
end
