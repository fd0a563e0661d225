-- ARGV: lease_id, outputs (JSON object). Returns {'ok'} | {'lost'} | {'cancelled'}.
local lid, outputs = ARGV[1], ARGV[2]
local now = now_ms()
local lease = live_lease(lid, now)
if not lease then return { 'lost' } end
if lease.st ~= 'running' then
  -- Cancelled under this lease: the worker has stopped and reported, so the
  -- lease goes now rather than at its expiry (the worker shows idle again).
  release_lease(lid, lease.worker)
  redis.call('PUBLISH', jobchan(lease.wf, lease.job), 'released')
  return { lease.st }
end
local wf, job = lease.wf, lease.job
release_lease(lid, lease.worker)
touch_worker(lease.worker, now)

local k = jkey(wf, job)
set_status(wf, job, 'running', 'success')
redis.call('HSET', k, 'out', outputs, 'err', '', 'end', now)
event(wf, job, 'success', tonumber(lease.att), now, '')
redis.call('PUBLISH', jobchan(wf, job), 'changed')

-- The DAG cascade: a dependent whose last need just finished is enqueued
-- with its own labels and retry policy.
for _, d in ipairs(split(redis.call('HGET', k, 'deps'), ',')) do
  local dk = jkey(wf, d)
  local rem = redis.call('HINCRBY', dk, 'rem', -1)
  if rem <= 0 and redis.call('HGET', dk, 'st') == 'waiting' then
    enqueue(wf, d, 'waiting', now, 0)
    event(wf, d, 'queued', 0, now, 'needs met')
  end
end
maybe_finish(wf, now)
return { 'ok' }
