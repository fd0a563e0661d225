-- ARGV: lease_id, error, retryable (1|0). Returns {'ok'} | {'lost'} | {'cancelled'}.
local lid, err, retryable = ARGV[1], ARGV[2], ARGV[3] == '1'
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
release_lease(lid, lease.worker)
touch_worker(lease.worker, now)
fail_attempt(lease.wf, lease.job, now, err, retryable)
return { 'ok' }
