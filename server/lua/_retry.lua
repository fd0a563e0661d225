--- @include "jobs"
-- Retrying jobs of a finished run, in that run: each retried job starts a
-- new attempt with a fresh retry budget; a job that succeeded keeps its
-- outputs and is not run again.
local RETRYABLE = { failure = true, cancelled = true, skipped = true }

-- Puts `jobs` (a set: job -> true) back to waiting, ready to be enqueued
-- once their needs outside the set have succeeded. Returns how many.
local function reset_jobs(run, jobs, now)
  local n = 0
  for job in pairs(jobs) do
    local k = jkey(run, job)
    local st, att = unpack(redis.call('HMGET', k, 'st', 'att'))
    att = tonumber(att) or 0
    -- the next attempt: a new number if the last one ran, else the same
    if redis.call('HEXISTS', akey(run, job), att) == 1 then att = att + 1 end
    set_status(run, job, st, 'created')
    redis.call('HSET', k, 'att', att, 'base', att, 'lease', '', 'worker', '', 'start', '', 'end', '',
      'out', '', 'lout', '', 'err', '', 'dly', 0, 'evkey', '', 'evuntil', '', 'evpayload', '', 'hb', 0)
    clear_attempt(k)
    local r = rkey(run)
    if redis.call('ZREM', P .. 'dead', member(run, job)) == 1 then redis.call('HINCRBY', r, 'ndead', -1) end
    if redis.call('HGET', r, 'fjob') == job then redis.call('HDEL', r, 'fjob', 'fkind', 'ferr') end
    n = n + 1
  end
  for job in pairs(jobs) do
    local rem = 0
    for _, need in ipairs(split(redis.call('HGET', jkey(run, job), 'needs'), ',')) do
      if redis.call('HGET', jkey(run, need), 'st') ~= 'success' then rem = rem + 1 end
    end
    redis.call('HSET', jkey(run, job), 'rem', rem)
  end
  return n
end

-- The run runs again; then the reset jobs are enqueued or wait.
local function reopen_run(run, jobs, now, detail)
  local r = rkey(run)
  local wf = redis.call('HGET', r, 'wf')
  redis.call('HSET', r, 'state', 'active', 'cancelled', 0, 'expired', 0, 'finished_ms', '')
  redis.call('ZREM', P .. 'finished', run)
  redis.call('HINCRBY', wkey(wf), 'active', 1)
  event(run, '', 'run', 'queued', 0, now, detail)
  for job in pairs(jobs) do enqueue_or_wait(run, job, 'created', now) end
  maybe_finish(run, now)
end
