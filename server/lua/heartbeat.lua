-- ARGV: lease_id. Renews by the lease's own ttl.
-- Returns {'ok', cancelled 0|1, expires_at_ms} or {'lost'}.
local lid = ARGV[1]
local now = now_ms()
local lease = live_lease(lid, now)
if not lease then return { 'lost' } end
local exp = now + lease.ttl * 1000
redis.call('ZADD', P .. 'leases', num(exp), lid)
touch_worker(lease.worker, now)
local cancelled = 0
if lease.st == 'cancelled' then cancelled = 1 end
return { 'ok', cancelled, exp }
