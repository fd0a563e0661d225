--- @include "base"
--- @include "ready"
-- Workflow and lease state transitions, shared by the scripts that change
-- jobs, so every transition goes through the same few functions.
--
-- Job hash fields (P.."job:"..wf..":"..job):
--   spec  JSON JobSpec (returned to claimers)   lk  label-set key ("a,b")
--   pr mr bk b1 b2   priority, max retries, backoff kind/params
--   needs deps       comma-joined job ids        nn  number of needs
--   st    created|waiting|ready|delayed|running|success|failure|skipped|cancelled
--   att rem lease worker enq dly start end out err
-- Workflow hash (P.."wf:"..wf): id name trigger jobs created state runs
--   cancelled started started_ms finished_ms ret defhash, and n:<st>
--   counters kept by set_status so a workflow's status is one HMGET.

local function wkey(wf) return P .. 'wf:' .. wf end
local function jkey(wf, job) return P .. 'job:' .. wf .. ':' .. job end
local function lkey(lid) return P .. 'lease:' .. lid end
local function logkey(wf, job) return P .. 'logs:' .. wf .. ':' .. job end
local function jobchan(wf, job) return P .. 'j:' .. wf .. ':' .. job end

local ACTIVE = { waiting = true, ready = true, delayed = true, running = true }
local TERMINAL = { success = true, failure = true, skipped = true, cancelled = true }

local function event(wf, job, st, att, now, detail)
  redis.call('XADD', P .. 'events:' .. wf, 'MAXLEN', '~', '1000', '*', 'e',
    cjson.encode({ workflow_id = wf, job_id = job, status = st, attempt = att,
                   at_ms = now, detail = detail or '' }))
end

local function set_status(wf, job, old, new)
  redis.call('HSET', jkey(wf, job), 'st', new)
  local w = wkey(wf)
  if old and old ~= '' then redis.call('HINCRBY', w, 'n:' .. old, -1) end
  redis.call('HINCRBY', w, 'n:' .. new, 1)
end

local function enqueue(wf, job, old, now, delay_ms)
  local k = jkey(wf, job)
  local lk, pr = unpack(redis.call('HMGET', k, 'lk', 'pr'))
  redis.call('HSET', k, 'enq', now, 'lease', '', 'worker', '')
  if delay_ms > 0 then
    set_status(wf, job, old, 'delayed')
    redis.call('HSET', k, 'dly', now + delay_ms)
    redis.call('ZADD', P .. 'delayed', num(now + delay_ms), wf .. ':' .. job)
    -- Servers wake one waiting claim when it is due (and the reaper
    -- promotes it by then anyway).
    redis.call('PUBLISH', P .. 'wake', '~' .. num(delay_ms) .. ':' .. lk)
  else
    set_status(wf, job, old, 'ready')
    redis.call('HSET', k, 'dly', 0)
    make_ready(wf, job, lk, pr)
  end
end

local function promote_delayed(now, limit)
  local due = redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', num(now), 'LIMIT', 0, limit)
  for _, member in ipairs(due) do
    redis.call('ZREM', P .. 'delayed', member)
    local wf, job = string.match(member, '^([^:]+):(.+)$')
    local k = jkey(wf, job)
    local st, lk, pr = unpack(redis.call('HMGET', k, 'st', 'lk', 'pr'))
    if st == 'delayed' then
      set_status(wf, job, 'delayed', 'ready')
      make_ready(wf, job, lk, pr)
    end
  end
  return #due
end

local function maybe_finish(wf, now)
  local w = wkey(wf)
  local state, a, b, c, d, ret, cancelled, failed = unpack(redis.call('HMGET', w,
    'state', 'n:waiting', 'n:ready', 'n:delayed', 'n:running', 'ret', 'cancelled', 'n:failure'))
  if state ~= 'active' then return end
  if (tonumber(a) or 0) + (tonumber(b) or 0) + (tonumber(c) or 0) + (tonumber(d) or 0) > 0 then
    return
  end
  local final = 'success'
  if cancelled == '1' then final = 'cancelled'
  elseif (tonumber(failed) or 0) > 0 then final = 'failure' end
  redis.call('HSET', w, 'state', 'done', 'finished_ms', now)
  redis.call('ZADD', P .. 'finished', num(now + tonumber(ret or 0) * 1000), wf)
  event(wf, '', final, 0, now, 'workflow finished')
end

-- A permanent failure: every job downstream that has not run is skipped.
local function skip_downstream(wf, job, now)
  local queue = split(redis.call('HGET', jkey(wf, job), 'deps'), ',')
  local i = 1
  while i <= #queue do
    local d = queue[i]
    local k = jkey(wf, d)
    local st, deps = unpack(redis.call('HMGET', k, 'st', 'deps'))
    if st == 'waiting' then
      set_status(wf, d, st, 'skipped')
      redis.call('HSET', k, 'end', now, 'err', 'upstream ' .. job .. ' failed')
      event(wf, d, 'skipped', 0, now, 'upstream ' .. job .. ' failed')
      redis.call('PUBLISH', jobchan(wf, d), 'skipped')
      for _, x in ipairs(split(deps, ',')) do queue[#queue + 1] = x end
    end
    i = i + 1
  end
end

local function release_lease(lid, worker)
  redis.call('DEL', lkey(lid))
  redis.call('ZREM', P .. 'leases', lid)
  if worker and worker ~= '' then redis.call('SREM', P .. 'wleases:' .. worker, lid) end
end

-- Backoff before retry number att+1: the first retry waits the base delay,
-- exponential doubles per further attempt, capped at max.
local function backoff_ms(bk, b1, b2, att)
  b1 = tonumber(b1) or 0
  if bk == 'fixed' then return b1 * 1000 end
  if bk == 'exp' then
    local d = b1 * (2 ^ att)
    local cap = tonumber(b2) or 0
    if d > cap then d = cap end
    return d * 1000
  end
  return 0
end

-- A failed attempt of a running job: retry with backoff while the budget
-- allows, else fail for good and skip everything downstream. Returns what
-- became of the job: 'retrying' or 'failure'.
local function fail_attempt(wf, job, now, err, retryable)
  local outcome = 'failure'
  local k = jkey(wf, job)
  local att, mr, bk, b1, b2 = unpack(redis.call('HMGET', k, 'att', 'mr', 'bk', 'b1', 'b2'))
  att = tonumber(att) or 0
  redis.call('HSET', k, 'err', err, 'end', now)
  if retryable and att < (tonumber(mr) or 0) then
    redis.call('HSET', k, 'att', att + 1)
    local delay = backoff_ms(bk, b1, b2, att)
    enqueue(wf, job, 'running', now, delay)
    event(wf, job, 'retrying', att + 1, now, err)
    outcome = 'retrying'
  else
    set_status(wf, job, 'running', 'failure')
    event(wf, job, 'failure', att, now, err)
    skip_downstream(wf, job, now)
  end
  redis.call('PUBLISH', jobchan(wf, job), 'changed')
  maybe_finish(wf, now)
  return outcome
end

-- Looks up a lease for heartbeat/complete/fail/logs. An expired lease is
-- handled right here (as the reaper would), so the answer never depends on
-- whether a reaper happened to run first. Returns the lease fields or nil.
local function expire_lease(lid, now, wf, job, worker)
  release_lease(lid, worker)
  local st, cur = unpack(redis.call('HMGET', jkey(wf, job), 'st', 'lease'))
  if cur == lid and st == 'running' then
    fail_attempt(wf, job, now, 'lease expired', true)
    return true
  end
  -- A cancelled job's log tail waits for its lease to end: tell it.
  redis.call('PUBLISH', jobchan(wf, job), 'released')
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
  local wf, job, worker, ttl, att, tok = unpack(redis.call('HMGET', lkey(lid),
    'wf', 'job', 'worker', 'ttl', 'att', 'tok'))
  if not wf then return nil, 'lost' end
  if caller ~= '*' and caller ~= tok then return nil, 'forbidden' end
  -- A run token speaks for the worker token that claimed the lease: once
  -- that token is revoked, its leases' run tokens are refused too.
  if caller == '*' and tok and tok ~= '' and tok ~= 'admin'
      and redis.call('EXISTS', P .. 'token:' .. tok) == 0 then
    return nil, 'forbidden'
  end
  local exp = tonumber(redis.call('ZSCORE', P .. 'leases', lid) or 0)
  if exp < now then
    expire_lease(lid, now, wf, job, worker)
    return nil, 'lost'
  end
  local st, cur = unpack(redis.call('HMGET', jkey(wf, job), 'st', 'lease'))
  if cur ~= lid then
    -- Superseded (the workflow was re-run): the record is garbage now.
    release_lease(lid, worker)
    return nil, 'lost'
  end
  return { wf = wf, job = job, worker = worker, ttl = tonumber(ttl), att = att, st = st, tok = tok }
end

local function touch_worker(worker, now)
  redis.call('HSET', P .. 'worker:' .. worker, 'last_seen', now)
  redis.call('ZADD', P .. 'workers', now, worker)
end

-- A worker id belongs to the API token that first registered or claimed
-- under it, so one fleet cannot impersonate another's workers. `caller`
-- is that token's id, or '' with auth off (nothing is checked or kept).
-- An owner whose token was revoked gives the id up. Returns false, having
-- changed nothing, when another token owns the id.
local function own_worker(worker, caller)
  if caller == '' then return true end
  local wk = P .. 'worker:' .. worker
  local owner = redis.call('HGET', wk, 'owner')
  if owner and owner ~= '' and owner ~= caller
      and (owner == 'admin' or redis.call('EXISTS', P .. 'token:' .. owner) == 1) then
    return false
  end
  if owner ~= caller then redis.call('HSET', wk, 'owner', caller) end
  return true
end

-- The start of complete and fail: takes the lease of a running job back
-- from its worker and returns it, or returns nil and the refusal to send.
local function take_lease_for_result(lid, now, caller)
  local lease, refusal = live_lease(lid, now, caller)
  if not lease then return nil, { refusal } end
  release_lease(lid, lease.worker)
  if lease.st ~= 'running' then
    -- Cancelled under this lease: the worker has stopped and reported, so the
    -- lease goes now rather than at its expiry (the worker shows idle again),
    -- and the job's log tail, which waits for that, may end.
    redis.call('PUBLISH', jobchan(lease.wf, lease.job), 'released')
    return nil, { lease.st }
  end
  touch_worker(lease.worker, now)
  return lease
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
-- another, {'forbidden'} for another token, else {'lost'}.
local function replay(lid, caller, kind, digest)
  local rec = redis.call('GET', P .. 'settled:' .. lid)
  if not rec then return { 'lost' } end
  local k, d, tok, outcome = string.match(rec, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
  if caller ~= '*' and caller ~= tok then return { 'forbidden' } end
  if k ~= kind or d ~= digest then return { 'settled', outcome } end
  return { 'replayed', outcome }
end

-- (Re)starts a run: every job back to its initial state, roots enqueued.
local function start_run(wf, now)
  local w = wkey(wf)
  local jobs = split(redis.call('HGET', w, 'jobs'), ',')
  for _, st in ipairs({ 'created', 'waiting', 'ready', 'delayed', 'running', 'success',
                        'failure', 'skipped', 'cancelled' }) do
    redis.call('HDEL', w, 'n:' .. st)
  end
  redis.call('HINCRBY', w, 'runs', 1)
  redis.call('HSET', w, 'state', 'active', 'cancelled', 0, 'started', 0)
  redis.call('HDEL', w, 'started_ms', 'finished_ms')
  redis.call('ZREM', P .. 'finished', wf)
  for _, job in ipairs(jobs) do
    local k = jkey(wf, job)
    local nn = tonumber(redis.call('HGET', k, 'nn')) or 0
    redis.call('HSET', k, 'att', 0, 'rem', nn, 'lease', '', 'worker', '', 'start', '',
      'end', '', 'out', '', 'err', '', 'dly', 0)
    redis.call('DEL', logkey(wf, job))
    if nn == 0 then
      enqueue(wf, job, nil, now, 0)
    else
      set_status(wf, job, nil, 'waiting')
      redis.call('HSET', k, 'enq', 0)
    end
  end
  event(wf, '', 'queued', 0, now, 'run started')
end
