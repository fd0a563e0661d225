--- @include "leases"
-- ARGV: worker_id, caller (API token id; '' with auth off).
-- A worker stopping cleanly says so: it shows `stopped` (not offline) until
-- the reaper forgets it. Returns {'ok'} | {'taken'} | {'not_found'}.
local worker, caller = ARGV[1], ARGV[2]
local wk = P .. 'worker:' .. worker
if redis.call('EXISTS', wk) == 0 then return { 'not_found' } end
if not own_worker(worker, caller) then return { 'taken' } end
local now = now_ms()
redis.call('HSET', wk, 'stopped', now)
redis.call('ZADD', P .. 'stopped', now, worker)
touch_worker(worker, now)
return { 'ok' }
