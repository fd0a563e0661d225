--- @include "runs"
-- The scheduler's pass over runs: delayed runs whose scheduled time has
-- come start (their roots are enqueued), and runs past their expires_at
-- that no worker has started yet end `expired`, their jobs cancelled.
-- ARGV: at most this many of each per call, the most new runs a paused
-- workflow holds (a released run meets its workflow's pause and its
-- concurrency group as a run started now: see release_run).
-- Returns {released, expired}. Any number of schedulers may call it: it
-- acts only on what is due, atomically.
local limit, most_held = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_ms()
local released = 0
for _, run in ipairs(redis.call('ZRANGEBYSCORE', P .. 'delayedruns', '-inf', num(now), 'LIMIT', 0, limit)) do
  redis.call('ZREM', P .. 'delayedruns', run)
  if redis.call('HGET', rkey(run), 'state') == 'delayed' then
    release_run(run, now, 'scheduled time reached', most_held)
    released = released + 1
  end
end
local expired = 0
for _, run in ipairs(redis.call('ZRANGEBYSCORE', P .. 'expiring', '-inf', num(now), 'LIMIT', 0, limit)) do
  redis.call('ZREM', P .. 'expiring', run)
  local r = rkey(run)
  local state, started, jobs, wf, n = unpack(redis.call('HMGET', r, 'state', 'started', 'jobs', 'wf', 'num'))
  if (state == 'delayed' or state == 'active') and started ~= '1' then
    redis.call('ZREM', P .. 'delayedruns', run)
    redis.call('HSET', r, 'state', 'active', 'expired', 1)
    for _, job in ipairs(split(jobs, ',')) do
      if cancel_one(run, job, now, 'the run expired before it started') then
        redis.call('HSET', jkey(run, job), 'err', 'the run expired before it started')
      end
    end
    note(string.format('run %s (%s #%s) expired before it started', run, wf, n or '?'))
    maybe_finish(run, now)
    expired = expired + 1
  end
end
return { released, expired }
