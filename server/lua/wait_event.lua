--- @include "leases"
-- ARGV: lease_id, caller (see live_lease), event key, timeout secs, secs to
-- remember the settled lease. A running job waits for an event: its
-- attempt ends as `waiting` (the lease is released, the worker's slot is
-- free, no retry is used); the event (or an approval) enqueues it again,
-- else it fails `event timed out`. Returns {'ok', until_ms} | {'lost'} |
-- {'forbidden'} | {'cancelled'}.
local lid, caller, key, secs, keep = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local now = now_ms()
local lease, refusal = take_lease_for_result(lid, now, caller)
if not lease then return lease_gone(lid, caller, refusal[1]) end
local k = jkey(lease.run, lease.job)
record_attempt(lease.run, lease.job, lease.att, lease.worker, jget(k, 'start'), now, 'waiting', '')
redis.call('HSET', k, 'end', now)
enter_wait(lease.run, lease.job, 'running', key, now + secs * 1000, now)
-- its worker's next heartbeat hears that the job waits (not a lost lease)
settle(lid, lease.tok, 'wait', table.concat({ lease.run, lease.job, lease.wf, lease.att }, ' '), 'waiting', keep)
return { 'ok', now + secs * 1000 }
