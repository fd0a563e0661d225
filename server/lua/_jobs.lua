--- @include "keys"
--- @include "ready"
-- Job and run state transitions, shared by every script that changes a
-- job, so each transition goes through the same few functions.
--
-- Internal job states: waiting (needs not met) ready delayed (backoff)
-- running eventwait (for an event or an approval) success failure skipped
-- cancelled; the first three show as `queued`, eventwait as `waiting`. A
-- run counts its jobs per state (n:<st>), so its status is one HMGET.

local ACTIVE = { waiting = true, ready = true, delayed = true, running = true, eventwait = true }
local TERMINAL = { success = true, failure = true, skipped = true, cancelled = true }

-- Every change of a run or a job is an event: kind 'run' or 'job' here
-- (the in-job calls add their own kinds, some with structured data: `raw`,
-- JSON kept as sent, since cjson cannot tell {} from [] once decoded).
-- `level`: a log entry's own level (the server derives the others' when read).
local function event(run, job, kind, status, att, now, detail, raw, level)
  redis.call('XADD', evkey(run), 'MAXLEN', '~', '10000', '*', 'e',
    cjson.encode({ run_id = run, job_id = job, type = kind, status = status, attempt = att,
                   at_ms = now, detail = detail or '', raw = raw, level = level }))
  redis.call('PUBLISH', runchan(run), kind)
end

local function set_status(run, job, old, new)
  redis.call('HSET', jkey(run, job), 'st', new)
  local r = rkey(run)
  if old and old ~= '' then redis.call('HINCRBY', r, 'n:' .. old, -1) end
  redis.call('HINCRBY', r, 'n:' .. new, 1)
end

-- A job waits for an event (a job's wait-for-event call, or a gate: a job
-- that is only a wait) until `untl`, when it fails as timed out.
local function enter_wait(run, job, old, key, untl, now)
  set_status(run, job, old, 'eventwait')
  redis.call('HSET', jkey(run, job), 'evkey', key, 'evuntil', num(untl), 'lease', '', 'worker', '')
  redis.call('SADD', P .. 'evwait:' .. key, member(run, job))
  redis.call('ZADD', P .. 'evtimeouts', num(untl), member(run, job))
  event(run, job, 'job', 'waiting', tonumber(redis.call('HGET', jkey(run, job), 'att')) or 0, now,
    'waiting for event ' .. key)
  redis.call('PUBLISH', jobchan(run, job), 'changed')
end

-- No longer waiting (released, cancelled or timed out).
local function leave_wait(run, job)
  local key = redis.call('HGET', jkey(run, job), 'evkey')
  if key and key ~= '' then redis.call('SREM', P .. 'evwait:' .. key, member(run, job)) end
  redis.call('ZREM', P .. 'evtimeouts', member(run, job))
end

local function enqueue(run, job, old, now, delay_ms)
  local k = jkey(run, job)
  local lk, pr, gate, gsecs = unpack(redis.call('HMGET', k, 'lk', 'pr', 'gate', 'gsecs'))
  if gate and gate ~= '' and delay_ms == 0 then
    -- a gate never goes to a worker: it waits for its event or approval
    enter_wait(run, job, old, gate, now + (tonumber(gsecs) or 86400) * 1000, now)
    return
  end
  redis.call('HSET', k, 'enq', now, 'lease', '', 'worker', '')
  if delay_ms > 0 then
    set_status(run, job, old, 'delayed')
    redis.call('HSET', k, 'dly', num(now + delay_ms))
    redis.call('ZADD', P .. 'delayed', num(now + delay_ms), member(run, job))
    -- Servers wake one waiting claim when it is due (and the reaper
    -- promotes it by then anyway).
    redis.call('PUBLISH', P .. 'wake', '~' .. num(delay_ms) .. ':' .. lk)
  else
    set_status(run, job, old, 'ready')
    redis.call('HSET', k, 'dly', 0)
    make_ready(run, job, lk, pr)
  end
end

local function promote_delayed(now, limit)
  local due = redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', num(now), 'LIMIT', 0, limit)
  for _, m in ipairs(due) do
    redis.call('ZREM', P .. 'delayed', m)
    local run, job = parse_member(m)
    local st, lk, pr = unpack(redis.call('HMGET', jkey(run, job), 'st', 'lk', 'pr'))
    if st == 'delayed' then
      set_status(run, job, 'delayed', 'ready')
      make_ready(run, job, lk, pr)
    end
  end
  return #due
end

-- An attempt's record, written when it starts and again when it ends.
local function record_attempt(run, job, att, worker, started, finished, status, err)
  redis.call('HSET', akey(run, job), att, cjson.encode({
    number = tonumber(att), worker_id = worker or '', started_at = tonumber(started) or 0,
    finished_at = tonumber(finished) or 0, status = status, error = err or '' }))
end

-- Ends the run once none of its jobs can still run.
local function maybe_finish(run, now)
  local r = rkey(run)
  local state, a, b, c, d, e, ret, cancelled, failed, wf, created, num_, jobs_cancelled = unpack(redis.call(
    'HMGET', r, 'state', 'n:waiting', 'n:ready', 'n:delayed', 'n:running', 'n:eventwait', 'ret', 'cancelled',
    'n:failure', 'wf', 'created', 'num', 'n:cancelled'))
  if state ~= 'active' then return end
  if (tonumber(a) or 0) + (tonumber(b) or 0) + (tonumber(c) or 0) + (tonumber(d) or 0)
      + (tonumber(e) or 0) > 0 then
    return
  end
  -- as run_status() in store/views.py reads it
  local final = 'success'
  if redis.call('HGET', r, 'expired') == '1' then final = 'expired'
  elseif cancelled == '1' then final = 'cancelled'
  elseif (tonumber(failed) or 0) > 0 then final = 'failure'
  elseif (tonumber(jobs_cancelled) or 0) > 0 then final = 'cancelled' end
  redis.call('HSET', r, 'state', 'done', 'finished_ms', now)
  redis.call('ZADD', P .. 'finished', num(now + tonumber(ret or 0) * 1000), run)
  redis.call('HINCRBY', wkey(wf), 'active', -1)
  event(run, '', 'run', final, 0, now, 'run finished')
  -- a one-off workflow is named by its name (its id is a UUID), as the server's log lines do
  local name, kind = unpack(redis.call('HMGET', wkey(wf), 'name', 'kind'))
  note(string.format('run %s (%s #%s) finished: %s in %.1fs', run, kind == 'oneoff' and name or wf, num_ or '?',
    final, (now - (tonumber(created) or now)) / 1000))
end

-- A job that will not run: every job downstream that has not run is
-- skipped too.
local function skip_downstream(run, job, now, why)
  local queue = split(redis.call('HGET', jkey(run, job), 'deps'), ',')
  local i = 1
  while i <= #queue do
    local d = queue[i]
    local k = jkey(run, d)
    local st, deps = unpack(redis.call('HMGET', k, 'st', 'deps'))
    if st == 'waiting' then
      set_status(run, d, st, 'skipped')
      redis.call('HSET', k, 'end', now, 'err', why)
      event(run, d, 'job', 'skipped', 0, now, why)
      redis.call('PUBLISH', jobchan(run, d), 'skipped')
      for _, x in ipairs(split(deps, ',')) do queue[#queue + 1] = x end
    end
    i = i + 1
  end
end

-- Backoff before the next attempt; `n` counts the attempts failed under
-- the current retry budget, from 0: the first retry waits the base delay,
-- exponential doubles per further one, capped at max.
local function backoff_ms(bk, b1, b2, n)
  b1 = tonumber(b1) or 0
  if bk == 'fixed' then return b1 * 1000 end
  if bk == 'exp' then
    local d = b1 * (2 ^ n)
    local cap = tonumber(b2) or 0
    if d > cap then d = cap end
    return d * 1000
  end
  return 0
end

-- Cancels one job if it can still run: queued, it ends at once; running,
-- it is marked cancelled and keeps its lease, so its worker learns it from
-- its heartbeat and its last logs are still accepted. Returns whether it
-- was cancelled now.
local function cancel_one(run, job, now, why)
  local k = jkey(run, job)
  local st, lk, att = unpack(redis.call('HMGET', k, 'st', 'lk', 'att'))
  if not ACTIVE[st] then return false end
  if st == 'ready' then unready(lk, member(run, job)) end
  if st == 'delayed' then redis.call('ZREM', P .. 'delayed', member(run, job)) end
  if st == 'eventwait' then leave_wait(run, job) end
  set_status(run, job, st, 'cancelled')
  redis.call('HSET', k, 'end', now)
  event(run, job, 'job', 'cancelled', tonumber(att), now, why)
  redis.call('PUBLISH', jobchan(run, job), 'changed')
  return true
end

-- What a job reported of its attempt through the in-job SDK (progress,
-- current step, resource use, result details) goes when another starts.
local function clear_attempt(k)
  redis.call('HDEL', k, 'prog', 'sname', 'sidx', 'pmeta', 'res', 'resat', 'pcpu', 'pmem', 'rdata', 'etype',
    'estack')
end

-- A job that will not run again: a dead letter, and everything downstream
-- skipped. `kind` says why (failure | timed_out | lost | system: the
-- server's own doing, a wait that timed out); the run keeps the first
-- such job's (fjob fkind ferr) and counts its dead letters (ndead), so
-- its status can say how it failed without reading its jobs.
local function fail_for_good(run, job, from, att, err, now, kind)
  set_status(run, job, from, 'failure')
  event(run, job, 'job', 'failure', att, now, err)
  note(string.format('job %s/%s failed for good (attempt %d): %s', run, job, att, err))
  -- scored by a sequence, not the clock: a cursor through them stays exact
  redis.call('ZADD', P .. 'dead', redis.call('INCR', P .. 'deadseq'), member(run, job))
  local r = rkey(run)
  redis.call('HINCRBY', r, 'ndead', 1)
  if (redis.call('HGET', r, 'fjob') or '') == '' then
    redis.call('HSET', r, 'fjob', job, 'fkind', kind or 'failure', 'ferr', err)
  end
  skip_downstream(run, job, now, 'upstream ' .. job .. ' failed')
end

-- A failed attempt of a running job: retry with backoff while its budget
-- allows, else fail for good (a dead letter) and skip everything
-- downstream. `status` names how the attempt ended (failure, timed_out,
-- lost).
-- Returns what became of the job: 'retrying' or 'failure'.
local function fail_attempt(run, job, now, err, retryable, status, from)
  from = from or 'running'
  local k = jkey(run, job)
  local att, base, mr, bk, b1, b2, worker, start = unpack(redis.call('HMGET', k,
    'att', 'base', 'mr', 'bk', 'b1', 'b2', 'worker', 'start'))
  att, base = tonumber(att) or 0, tonumber(base) or 0
  redis.call('HSET', k, 'err', err, 'end', now)
  record_attempt(run, job, att, worker, start, now, status or 'failure', err)
  local outcome = 'failure'
  if retryable and att - base < (tonumber(mr) or 0) then
    -- a new attempt starts without the outputs the failed one upserted
    redis.call('HSET', k, 'att', att + 1, 'out', '', 'lout', '')
    clear_attempt(k)
    local delay = backoff_ms(bk, b1, b2, att - base)
    enqueue(run, job, from, now, delay)
    event(run, job, 'job', 'queued', att + 1, now, 'retrying: ' .. err)
    note(string.format('job %s/%s attempt %d failed, retry in %.1fs: %s', run, job, att, delay / 1000, err))
    outcome = 'retrying'
  else
    fail_for_good(run, job, from, att, err, now, status or 'failure')
  end
  redis.call('PUBLISH', jobchan(run, job), 'changed')
  maybe_finish(run, now)
  return outcome
end

-- A job whose needs are all met is enqueued; one still waiting on some is
-- (or stays) waiting. `old` is its state before.
local function enqueue_or_wait(run, job, old, now)
  local k = jkey(run, job)
  local rem = tonumber(redis.call('HGET', k, 'rem')) or 0
  if rem <= 0 then
    -- the event first: a gate's enqueue goes straight on to `waiting`
    event(run, job, 'job', 'queued', tonumber(redis.call('HGET', k, 'att')) or 0, now, 'needs met')
    enqueue(run, job, old, now, 0)
  else
    set_status(run, job, old, 'waiting')
    redis.call('HSET', k, 'enq', 0)
  end
end

-- A job succeeded with these outputs (JSON): its dependents whose last need
-- this was are enqueued, with their own labels and retry policy.
local function succeed(run, job, from, outputs, now, detail)
  local k = jkey(run, job)
  set_status(run, job, from, 'success')
  redis.call('HSET', k, 'out', outputs, 'err', '', 'end', now)
  event(run, job, 'job', 'success', tonumber(redis.call('HGET', k, 'att')) or 0, now, detail or '')
  redis.call('PUBLISH', jobchan(run, job), 'changed')
  for _, d in ipairs(split(redis.call('HGET', k, 'deps'), ',')) do
    local dk = jkey(run, d)
    local rem = redis.call('HINCRBY', dk, 'rem', -1)
    if rem <= 0 and redis.call('HGET', dk, 'st') == 'waiting' then
      enqueue_or_wait(run, d, 'waiting', now)
    end
  end
  maybe_finish(run, now)
end

-- A job record, from its static description `m` (lk pr mr bk b1 b2 gate
-- gsecs, tab-separated) and its needs and dependents.
local function init_job(run, job, m, needs, deps, rem)
  local lk, pr, mr, bk, b1, b2, gate, gsecs = string.match(m,
    '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$')
  redis.call('HSET', jkey(run, job), 'st', 'created', 'att', 0, 'base', 0, 'rem', rem, 'lease', '',
    'worker', '', 'enq', 0, 'dly', 0, 'start', '', 'end', '', 'out', '', 'err', '',
    'lk', lk, 'pr', pr, 'mr', mr, 'bk', bk, 'b1', b1, 'b2', b2, 'gate', gate, 'gsecs', gsecs,
    'needs', needs or '', 'deps', deps or '')
end

-- Starts a run of a workflow's definition version: a job record per job,
-- the roots enqueued. `inputs`, `tags`: JSON objects. `held`: a delayed
-- run (its scheduled time not yet come): every job waits, and the run is
-- `delayed` until release_run.
local function create_run(run, wf, ver, num_, by, inputs, tags, seq, ret, now, held)
  local d = dkey(wf, ver)
  local jobs = redis.call('HGET', d, 'jobs')
  redis.call('HSET', rkey(run), 'id', run, 'wf', wf, 'ver', ver, 'num', num_, 'by', by, 'seq', seq,
    'created', now, 'state', held and 'delayed' or 'active', 'cancelled', 0, 'started', 0, 'ret', ret,
    'inputs', inputs, 'tags', tags, 'jobs', jobs)
  redis.call('HINCRBY', d, 'refs', 1)
  redis.call('ZADD', P .. 'runs', seq, run)
  redis.call('ZADD', P .. 'wfruns:' .. wf, seq, run)
  redis.call('HSET', wkey(wf), 'last', run)
  redis.call('HINCRBY', wkey(wf), 'active', 1)
  redis.call('ZREM', P .. 'oneoffs', wf)
  event(run, '', 'run', held and 'delayed' or 'queued', 0, now, 'run ' .. num_ .. ' of ' .. wf .. ' (' .. by .. ')')
  for _, job in ipairs(split(jobs, ',')) do
    local m, needs, deps = unpack(redis.call('HMGET', d, 'm:' .. job, 'n:' .. job, 'd:' .. job))
    local nn = #split(needs, ',')
    init_job(run, job, m, needs, deps, nn)
    if nn == 0 and not held then
      enqueue(run, job, nil, now, 0)
    else
      set_status(run, job, nil, 'waiting')
    end
  end
  if not held then maybe_finish(run, now) end
end

-- A delayed run whose time has come: its roots are enqueued as at start.
local function release_run(run, now, why)
  local r = rkey(run)
  redis.call('HSET', r, 'state', 'active', 'released', now)
  event(run, '', 'run', 'queued', 0, now, why)
  local wf, n = unpack(redis.call('HMGET', r, 'wf', 'num'))
  note(string.format('run %s (%s #%s): %s', run, wf, n or '?', why))
  for _, job in ipairs(split(redis.call('HGET', r, 'jobs'), ',')) do
    local st, rem = unpack(redis.call('HMGET', jkey(run, job), 'st', 'rem'))
    if st == 'waiting' and (tonumber(rem) or 0) <= 0 then enqueue(run, job, 'waiting', now, 0) end
  end
  maybe_finish(run, now)
end
