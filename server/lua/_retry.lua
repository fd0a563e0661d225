--- @include "control"
-- Retrying jobs of a finished run, in that run: each retried job starts a
-- new attempt with a fresh retry budget; a job that succeeded keeps its
-- outputs and is not run again. A matrix's combinations are retried
-- through their matrix job: decided again, its combinations that did not
-- succeed run again (decide.lua).
local RETRYABLE = { failure = true, cancelled = true, skipped = true }

-- A job put back to run again (a retry): it waits for its needs not yet
-- settled, or goes on as if its last need had just settled.
local function enqueue_or_wait(run, job, old, now)
  local k = jkey(run, job)
  local rem, up, fl = unpack(jmget(k, 'rem', 'up', 'fl'))
  if (tonumber(rem) or 0) > 0 then
    set_status(run, job, old, 'waiting')
    redis.call('HSET', k, 'enq', 0)
  elseif (up or '') ~= '' and not has(fl, 'a') then
    skip_job(run, job, old, now, 'something upstream did not succeed')
    cascade(run, job, now)
  else
    needs_settled(run, job, old, now)
  end
end

-- Puts `jobs` (a set: job -> true) back, to be enqueued (or decided) once
-- their needs outside the set have settled. Returns how many.
local function reset_jobs(run, jobs, now)
  local n = 0
  for job in pairs(jobs) do
    local k = jkey(run, job)
    local st, att, cf = unpack(jmget(k, 'st', 'att', 'cf'))
    att = tonumber(att) or 0
    -- the next attempt: a new number if the last one ran (a running one
    -- has no record until it ends), else the same
    if st == 'running' or redis.call('HEXISTS', akey(run, job), att) == 1 then att = att + 1 end
    set_status(run, job, st, 'created')
    if cf == '1' then redis.call('HINCRBY', rkey(run), 'cofail', -1) end
    redis.call('HSET', k, 'att', att, 'base', att, 'lease', '', 'worker', '', 'start', '', 'end', '',
      'out', '', 'lout', '', 'err', '', 'dly', 0, 'evkey', '', 'evuntil', '', 'evpayload', '', 'hb', 0, 'cf', '',
      'hold', '')
    clear_attempt(k)
    local r = rkey(run)
    if redis.call('ZREM', P .. 'dead', member(run, job)) == 1 then redis.call('HINCRBY', r, 'ndead', -1) end
    if redis.call('HGET', r, 'fjob') == job then redis.call('HDEL', r, 'fjob', 'fkind', 'ferr') end
    n = n + 1
  end
  -- what each needs outside the set concluded, as the cascade would have told it
  for job in pairs(jobs) do
    local rem, up = 0, ''
    for _, need in ipairs(split(jget(jkey(run, job), 'needs'), ',')) do
      local nst, nup, ncf = unpack(jmget(jkey(run, need), 'st', 'up', 'cf'))
      if jobs[need] or not TERMINAL[nst] then
        rem = rem + 1
      else
        up = union(union(up, nup), CONCLUDED[conclusion(nst, ncf)] or '')
      end
    end
    redis.call('HSET', jkey(run, job), 'rem', rem, 'up', up)
  end
  return n
end

-- The run runs again (its attempt one more); then the reset jobs are
-- enqueued, decided or wait. A run in a concurrency group asks for its
-- place again first, its jobs held until it has one.
local function reopen_run(run, jobs, now, detail)
  local r = rkey(run)
  local wf, cg = unpack(redis.call('HMGET', r, 'wf', 'cg'))
  local grouped = cg and cg ~= ''
  redis.call('HSET', r, 'state', 'active', 'cancelled', 0, 'expired', 0, 'finished_ms', '')
  -- (a run that finished let go of what it waited for: see run_settles)
  if grouped then redis.call('HSET', r, 'wait', 'group') end
  redis.call('HINCRBY', r, 'ratt', 1)
  redis.call('ZREM', P .. 'finished', run)
  redis.call('HINCRBY', wkey(wf), 'active', 1)
  event(run, '', 'run', 'queued', 0, now, detail)
  -- first every job that waits, so that what settles next reaches it
  local settled = {}
  for job in pairs(jobs) do
    local st, rem = unpack(jmget(jkey(run, job), 'st', 'rem'))
    if st == 'created' then
      if (tonumber(rem) or 0) > 0 then
        set_status(run, job, 'created', 'waiting')
        redis.call('HSET', jkey(run, job), 'enq', 0)
      else
        settled[#settled + 1] = job
      end
    end
  end
  for _, job in ipairs(settled) do
    if jget(jkey(run, job), 'st') == 'created' then enqueue_or_wait(run, job, 'created', now) end
  end
  if grouped then run_enters_group(run, now) end
  maybe_finish(run, now)
end
