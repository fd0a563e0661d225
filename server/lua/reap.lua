--- @include "leases"
--- @include "defs"
-- Expired leases, due backoffs and event waits, rate-limited concurrency
-- groups' next turns (see _control.lua), retention.
-- ARGV: max leases to expire, max finished runs to purge, how long (ms) an
-- idle worker stays registered unseen.
-- Returns {expired, promoted, purged}. Safe to run from any number of
-- processes at once: each call is atomic and only acts on what is due.
local limit, purge_limit, forget_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local promoted = promote_delayed(now, limit)
promote_due_groups(now, limit)

local expired = 0
for _, lid in ipairs(redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', num(now - 1), 'LIMIT', 0, limit)) do
  local run, job, worker = unpack(redis.call('HMGET', lkey(lid), 'run', 'job', 'worker'))
  if run then
    if expire_lease(lid, now, run, job, worker) then expired = expired + 1 end
  else
    redis.call('ZREM', P .. 'leases', lid)
  end
end

-- Waits past their timeout fail `event timed out` (for good: the wait was
-- the job's own choice, or it is a gate nobody approved).
for _, m in ipairs(redis.call('ZRANGEBYSCORE', P .. 'evtimeouts', '-inf', num(now), 'LIMIT', 0, limit)) do
  local run, job = parse_member(m)
  local k = jkey(run, job)
  if jget(k, 'st') == 'eventwait' then
    -- the attempt that asked to wait is already recorded (`waiting`)
    leave_wait(run, job)
    redis.call('HSET', k, 'err', 'event timed out', 'end', now)
    fail_for_good(run, job, 'eventwait', tonumber(jget(k, 'att')) or 0, 'event timed out', now, 'system',
      'event_timeout')
    redis.call('PUBLISH', jobchan(run, job), 'changed')
    maybe_finish(run, now)
  else
    redis.call('ZREM', P .. 'evtimeouts', m)
  end
end

-- Retention: finished runs past RETENTION_SECS are deleted whole, and a
-- one-off workflow (POSTed, not PUT or from a file) with them once it has
-- no run left; one never started goes RETENTION_SECS after creation.
local purged = 0
for _, run in ipairs(redis.call('ZRANGEBYSCORE', P .. 'finished', '-inf', num(now), 'LIMIT', 0, purge_limit)) do
  local wf, state = unpack(redis.call('HMGET', rkey(run), 'wf', 'state'))
  if state == 'done' then
    purge_run(run)
    purged = purged + 1
    local w = wkey(wf)
    if redis.call('HGET', w, 'kind') == 'oneoff' and redis.call('ZCARD', P .. 'wfruns:' .. wf) == 0 then
      drop_workflow(wf)
    end
  end
  redis.call('ZREM', P .. 'finished', run)
end
for _, wf in ipairs(redis.call('ZRANGEBYSCORE', P .. 'oneoffs', '-inf', num(now), 'LIMIT', 0, purge_limit)) do
  if redis.call('ZCARD', P .. 'wfruns:' .. wf) == 0 then drop_workflow(wf) end
  redis.call('ZREM', P .. 'oneoffs', wf)
end
-- Workers restart under new ids (host-pid): forget the long gone ones,
-- but never one that still holds a lease.
for _, worker in ipairs(redis.call('ZRANGEBYSCORE', P .. 'workers', '-inf', num(now - forget_ms), 'LIMIT', 0, purge_limit)) do
  if redis.call('SCARD', P .. 'wleases:' .. worker) == 0 then forget_worker(worker) end
end
-- Workers that stopped (cleanly, or removed by an admin) are listed
-- `stopped` for ten minutes, then forgotten (unless they hold a lease,
-- which a clean stop does not); one seen since it was removed is running
-- after all, and stays.
for _, worker in ipairs(redis.call('ZRANGEBYSCORE', P .. 'stopped', '-inf', num(now - 600000), 'LIMIT', 0, purge_limit)) do
  local wk = P .. 'worker:' .. worker
  local last, stopped = unpack(redis.call('HMGET', wk, 'last_seen', 'stopped'))
  if (tonumber(last) or 0) > (tonumber(stopped) or 0) then
    redis.call('HSET', wk, 'stopped', '')
  elseif redis.call('SCARD', P .. 'wleases:' .. worker) == 0 then
    forget_worker(worker)
  end
  redis.call('ZREM', P .. 'stopped', worker)
end
return { expired, promoted, purged }
