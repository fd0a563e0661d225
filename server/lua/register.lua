--- @include "leases"
-- ARGV: worker_id, labels ("a,b"), caller (API token id; '' with auth off),
-- then the worker's own description: exclusive (0|1), concurrency, version,
-- host, claim wait secs, lease ttl secs ('' where not given); then the most
-- worker ids a token may hold.
-- Returns {'ok', registered_at_ms} | {'taken'} (another token owns the id) |
-- {'limit'} (a new id, and the caller holds that many already).
local worker, labels, caller = ARGV[1], ARGV[2], ARGV[3]
local fresh = redis.call('EXISTS', P .. 'worker:' .. worker) == 0
local owned = own_worker(worker, caller, tonumber(ARGV[10]), fresh)
if owned ~= 'ok' then return { owned } end
local now = now_ms()
redis.call('HSET', P .. 'worker:' .. worker, 'labels', labels, 'registered', now, 'excl', ARGV[4],
  'conc', ARGV[5], 'ver', ARGV[6], 'host', ARGV[7], 'wait', ARGV[8], 'ttl', ARGV[9], 'stopped', '')
redis.call('ZREM', P .. 'stopped', worker)
touch_worker(worker, now)
return { 'ok', now }
