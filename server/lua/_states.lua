--- @include "keys"
--- @include "ready"
--- @include "metrics"
-- Job and run state transitions, shared by every script that changes a
-- job (through _jobs.lua), so each transition goes through the same few
-- functions.
--
-- Internal job states: waiting (needs not settled) deciding (its needs
-- settled; its if:, matrix or expressions being evaluated by the server
-- process that settled the last one) ready delayed (backoff) held (a
-- matrix combination beyond max-parallel) running eventwait (for an event
-- or an approval) expanded (a matrix job whose combinations run) success
-- failure skipped cancelled. A job is also held while run control holds
-- it (its run paused, or waiting for its workflow or its concurrency group,
-- or its own group full: `hold` 'run' or 'group', see _control.lua).
-- waiting, deciding, ready, delayed and held show as `queued`, eventwait
-- as `waiting`, expanded as `running`. A run counts its jobs per state
-- (n:<st>), so its status is one HMGET.
--
-- A job's `fl` (from its definition, see server/deciding/flags.py): d (it
-- is decided before it runs), a (its if: calls a status function: it is
-- decided even after a failure upstream or a cancel), x (a matrix job), c
-- (continue-on-error). Its `up`: what its ancestors concluded besides
-- success, f (failed), c (cancelled), s (skipped), passed down as each
-- settles; `rem` counts its needs not yet settled.

local ACTIVE = { waiting = true, deciding = true, ready = true, delayed = true, held = true, running = true,
                 eventwait = true, expanded = true }
local TERMINAL = { success = true, failure = true, skipped = true, cancelled = true }

-- Run control (_control.lua, which every script that can end a job or
-- make one ready includes after this file) hooks into four transitions: a
-- job about to become ready enters its concurrency group, a job that ends
-- leaves it, and so does a run that finishes; a delayed run whose time has
-- come meets its paused workflow and its group. (claim, which only moves
-- a ready job to running, leaves them unset.)
local job_enters_group, job_leaves_group, run_settles, run_begins

local function has(flags, letter)
  return type(flags) == 'string' and string.find(flags, letter, 1, true) ~= nil
end

-- Every change of a run or a job is an event: kind 'run' or 'job' here
-- (the in-job calls add their own kinds, some with structured data: `raw`,
-- JSON kept as sent, since cjson cannot tell {} from [] once decoded).
-- `level`: a log entry's own level (the server derives the others' when read).
local function event(run, job, kind, status, att, now, detail, raw, level)
  redis.call('XADD', evkey(run), 'MAXLEN', '~', '10000', '*', 'e',
    cjson.encode({ run_id = run, job_id = job, type = kind, status = status, attempt = att,
                   at_ms = now, detail = detail or '', raw = raw, level = level }))
  publish_once(runchan(run), kind)
end

-- A run counts its jobs by status (n:<status> in run:<id>), and every job
-- that moves changes two counts: a call adds its changes up and writes each
-- count once, at its end (a batch of 32 results with its next claim moved
-- 128 counts, one HINCRBY each, where it now writes two or three). A count
-- the call must know is written through when first asked, its HINCRBY
-- answering it; after that it reads as that answer plus what the call added.
local COUNTS_ADDED = {} -- per call
local COUNTS_KNOWN = {} -- per call

local function count_add(run, field, by)
  local added = COUNTS_ADDED[run]
  if not added then
    added = {}
    COUNTS_ADDED[run] = added
  end
  added[field] = (added[field] or 0) + by
end

-- `stored`: the count as the caller just read it from run:<id>, if it did.
local function count_of(run, field, stored)
  local added = COUNTS_ADDED[run]
  local more = added and added[field] or 0
  if stored ~= nil then return (tonumber(stored) or 0) + more end
  local known = COUNTS_KNOWN[run]
  if not known then
    known = {}
    COUNTS_KNOWN[run] = known
  end
  if known[field] == nil then
    known[field] = redis.call('HINCRBY', rkey(run), field, more)
    if added then added[field] = 0 end
    more = 0
  end
  return known[field] + more
end

AT_END[#AT_END + 1] = function()
  for run, added in pairs(COUNTS_ADDED) do
    if not PURGED[run] then -- (not brought back by its counts)
      local r = rkey(run)
      for field, by in pairs(added) do
        if by ~= 0 then redis.call('HINCRBY', r, field, by) end
      end
    end
  end
end

-- `cg`: the job's group place when the caller has read it already (a job
-- that ends leaves its group; one in none need not be asked).
-- `more`: other fields of the job to write with its state, in the same HSET.
local function set_status(run, job, old, new, cg, more)
  if more then
    redis.call('HSET', jkey(run, job), 'st', new, unpack(more))
  else
    redis.call('HSET', jkey(run, job), 'st', new)
  end
  if old and old ~= '' then count_add(run, 'n:' .. old, -1) end
  count_add(run, 'n:' .. new, 1)
  if TERMINAL[new] and not TERMINAL[old or ''] and (cg == nil or cg == 'p' or cg == 'h') then
    job_leaves_group(run, job)
  end
end

-- A job that could run but may not yet: `why` is 'run' (its run is paused,
-- or waits for its workflow or its concurrency group) or 'group' (its own
-- concurrency group is full).
local function hold_job(run, job, old, why)
  if old ~= 'held' then set_status(run, job, old, 'held') end
  redis.call('HSET', jkey(run, job), 'hold', why)
end

-- Whether a run's jobs are held: paused, or not let in yet (see _control.lua).
local function run_held(run)
  local paused, wait = unpack(redis.call('HMGET', rkey(run), 'paused', 'wait'))
  return paused == '1' or (wait and wait ~= '') or false
end

-- A job that may go to a worker now goes to its ready queue, unless its
-- run is held or its concurrency group has no room for it: then it is
-- held until they let it go. `front`: ahead of its priority (a job handed
-- back unrun). `cg`: its concurrency group's state ('' none, 'o' outside
-- it, 'p' pending in it, 'h' holding a place).
local function to_ready(run, job, old, now, lk, pr, cg, front)
  if run_held(run) then
    hold_job(run, job, old, 'run')
    return
  end
  if cg == 'o' and not job_enters_group(run, job, old, now) then return end
  if old ~= 'ready' then set_status(run, job, old, 'ready') end
  make_ready(run, job, lk, pr, front)
end

-- A job waits for an event (a job's wait-for-event call, or a gate: a job
-- that is only a wait) until `untl`, when it fails as timed out.
local function enter_wait(run, job, old, key, untl, now)
  set_status(run, job, old, 'eventwait')
  redis.call('HSET', jkey(run, job), 'evkey', key, 'evuntil', num(untl), 'lease', '', 'worker', '')
  redis.call('SADD', P .. 'evwait:' .. key, member(run, job))
  redis.call('ZADD', P .. 'evtimeouts', num(untl), member(run, job))
  event(run, job, 'job', 'waiting', tonumber(jget(jkey(run, job), 'att')) or 0, now,
    'waiting for event ' .. key)
  redis.call('PUBLISH', jobchan(run, job), 'changed')
end

-- No longer waiting (released, cancelled or timed out).
local function leave_wait(run, job)
  local key = jget(jkey(run, job), 'evkey')
  if key and key ~= '' then redis.call('SREM', P .. 'evwait:' .. key, member(run, job)) end
  redis.call('ZREM', P .. 'evtimeouts', member(run, job))
end

local function enqueue(run, job, old, now, delay_ms)
  local k = jkey(run, job)
  local lk, pr, gate, gsecs, cg = unpack(jmget(k, 'lk', 'pr', 'gate', 'gsecs', 'cg'))
  if gate and gate ~= '' and delay_ms == 0 then
    -- a gate never goes to a worker: it waits for its event or approval
    enter_wait(run, job, old, gate, now + (tonumber(gsecs) or 86400) * 1000, now)
    return
  end
  jset(k, 'enq', now, 'lease', '', 'worker', '')
  if delay_ms > 0 then
    set_status(run, job, old, 'delayed')
    redis.call('HSET', k, 'dly', num(now + delay_ms))
    redis.call('ZADD', P .. 'delayed', num(now + delay_ms), member(run, job))
    -- Servers wake one waiting claim when it is due (and the reaper
    -- promotes it by then anyway).
    redis.call('PUBLISH', P .. 'wake', '~' .. num(delay_ms) .. ':' .. lk)
  else
    redis.call('HDEL', k, 'dly')
    to_ready(run, job, old, now, lk, pr, cg or '')
  end
end

-- Promoted once per call (each claim of a batch asks again, at the same
-- time): again only if the last look stopped at its limit.
local promoted_all = false -- per call
local function promote_delayed(now, limit)
  if promoted_all then return 0 end
  local due = redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', num(now), 'LIMIT', 0, limit)
  promoted_all = #due < limit
  for _, m in ipairs(due) do
    redis.call('ZREM', P .. 'delayed', m)
    local run, job = parse_member(m)
    local st, lk, pr, cg = unpack(jmget(jkey(run, job), 'st', 'lk', 'pr', 'cg'))
    if st == 'delayed' then to_ready(run, job, 'delayed', now, lk, pr, cg or '') end
  end
  return #due
end

-- An attempt's record, written when it ends (server/store/views.py shows
-- the running one from the job's record: a claim writes no second record).
local function record_attempt(run, job, att, worker, started, finished, status, err)
  redis.call('HSET', akey(run, job), att, cjson.encode({
    number = tonumber(att), worker_id = worker or '', started_at = tonumber(started) or 0,
    finished_at = tonumber(finished) or 0, status = status, error = err or '' }))
end

-- Ends the run once none of its jobs can still run.
local function maybe_finish(run, now)
  local r = rkey(run)
  local live = { 'n:waiting', 'n:ready', 'n:delayed', 'n:running', 'n:eventwait', 'n:deciding', 'n:held',
    'n:expanded' }
  local row = redis.call('HMGET', r, 'state', unpack(live))
  if row[1] ~= 'active' then return end
  for i, field in ipairs(live) do
    if count_of(run, field, row[i + 1]) > 0 then return end
  end
  local ret, cancelled, failed, wf, created, num_, jobs_cancelled, allowed, cg, wait, paused = unpack(redis.call(
    'HMGET', r, 'ret', 'cancelled', 'n:failure', 'wf', 'created', 'num', 'n:cancelled', 'cofail', 'cg', 'wait',
    'paused'))
  failed, jobs_cancelled = count_of(run, 'n:failure', failed), count_of(run, 'n:cancelled', jobs_cancelled)
  -- as run_status() in store/views.py reads it; a continue-on-error job's
  -- failure (cofail counts them) does not fail its run
  local final = 'success'
  if redis.call('HGET', r, 'expired') == '1' then final = 'expired'
  elseif cancelled == '1' then final = 'cancelled'
  elseif (tonumber(failed) or 0) - (tonumber(allowed) or 0) > 0 then final = 'failure'
  elseif (tonumber(jobs_cancelled) or 0) > 0 then final = 'cancelled' end
  redis.call('HSET', r, 'state', 'done', 'finished_ms', now)
  redis.call('ZADD', P .. 'finished', num(now + tonumber(ret or 0) * 1000), run)
  redis.call('HINCRBY', wkey(wf), 'active', -1)
  event(run, '', 'run', final, 0, now, 'run finished')
  if (cg and cg ~= '') or (wait and wait ~= '') or paused == '1' then run_settles(run, wf, cg, wait, now) end
  -- a one-off workflow is named by its name (its id is a UUID), as the server's log lines do
  local name, kind = unpack(redis.call('HMGET', wkey(wf), 'name', 'kind'))
  note(string.format('run %s (%s #%s) finished: %s in %.1fs', run, kind == 'oneoff' and name or wf, num_ or '?',
    final, (now - (tonumber(created) or now)) / 1000))
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
-- its heartbeat and its last logs are still accepted; its attempt ends
-- now, as nothing the worker or the reaper does later records it. Returns
-- whether it was cancelled now.
local function cancel_one(run, job, now, why)
  local k = jkey(run, job)
  local st, lk, att, worker, started = unpack(jmget(k, 'st', 'lk', 'att', 'worker', 'start'))
  if not ACTIVE[st] then return false end
  if st == 'running' then
    record_attempt(run, job, att, worker, started, now, 'cancelled', why)
    tally('failures:cancelled')
  end
  if st == 'ready' then unready(lk, member(run, job)) end
  if st == 'delayed' then redis.call('ZREM', P .. 'delayed', member(run, job)) end
  if st == 'eventwait' then leave_wait(run, job) end
  if st == 'deciding' then redis.call('ZREM', P .. 'deciding', member(run, job)) end
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

