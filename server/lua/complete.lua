--- @include "leases"
-- ARGV: lease_id, caller (see live_lease), outputs (JSON object), digest of
-- this result, seconds to remember it.
-- Returns {'ok', 'success'} | {'replayed', outcome} | {'settled', outcome}
-- | {'lost'} | {'forbidden'} | {'cancelled'}.
local lid, caller, outputs, digest, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now = now_ms()
local lease, refusal = take_lease_for_result(lid, now, caller)
if not lease then
  if refusal[1] == 'lost' then return replay(lid, caller, 'complete', digest) end
  return refusal
end
local run, job = lease.run, lease.job

local k = jkey(run, job)
set_status(run, job, 'running', 'success')
redis.call('HSET', k, 'out', outputs, 'err', '', 'end', now)
local start = redis.call('HGET', k, 'start')
record_attempt(run, job, lease.att, lease.worker, start, now, 'success', '')
event(run, job, 'job', 'success', tonumber(lease.att), now, '')
redis.call('PUBLISH', jobchan(run, job), 'changed')

-- The DAG cascade: a dependent whose last need just finished is enqueued
-- with its own labels and retry policy.
for _, d in ipairs(split(redis.call('HGET', k, 'deps'), ',')) do
  local dk = jkey(run, d)
  local rem = redis.call('HINCRBY', dk, 'rem', -1)
  if rem <= 0 and redis.call('HGET', dk, 'st') == 'waiting' then
    enqueue_or_wait(run, d, 'waiting', now)
  end
end
maybe_finish(run, now)
settle(lid, lease.tok, 'complete', digest, 'success', keep)
return { 'ok', 'success' }
