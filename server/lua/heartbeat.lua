--- @include "leases"
-- ARGV: lease_id, caller (see live_lease), at least this many seconds
-- ('' or 0: none). Renews by the lease's own ttl, or that minimum if longer
-- (Restep's executors heartbeat less often than a rota lease lasts).
-- Returns {'ok', cancelled 0|1, expires_at_ms, run, job, now} | {'lost'} |
-- {'forbidden'} | {'waiting'} (the job asked to wait for an event: its
-- worker stops it and reports nothing).
local lid, caller = ARGV[1], ARGV[2]
local now = now_ms()
local lease, refusal = live_lease(lid, now, caller)
if not lease then return lease_gone(lid, caller, refusal) end
local exp = now + math.max(lease.ttl, tonumber(ARGV[3]) or 0) * 1000
redis.call('ZADD', P .. 'leases', num(exp), lid)
touch_worker(lease.worker, now)
-- when the job was last heard of: a job leased and not yet heard of has
-- been taken off its queue but may not be executing yet
redis.call('HSET', jkey(lease.run, lease.job), 'beat', now)
local cancelled = 0
if lease.st == 'cancelled' then cancelled = 1 end
return { 'ok', cancelled, exp, lease.run, lease.job, now }
