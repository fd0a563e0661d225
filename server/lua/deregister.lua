--- @include "leases"
-- ARGV: worker_id, caller (API token id; '' with auth off, and for an
-- admin, who may remove any worker and takes no id over).
-- A worker stopping cleanly says so, or an admin removes it: it shows
-- `stopped`, keeping its last-seen time, until the reaper forgets it (a
-- worker still running shows again when next seen). Returns {'ok'} |
-- {'taken'} | {'not_found'}.
local worker, caller = ARGV[1], ARGV[2]
local wk = P .. 'worker:' .. worker
if redis.call('EXISTS', wk) == 0 then return { 'not_found' } end
-- (a stop never adds a worker: no cap to check)
if own_worker(worker, caller, math.huge, false) == 'taken' then return { 'taken' } end
local now = now_ms()
redis.call('HSET', wk, 'stopped', now)
redis.call('ZADD', P .. 'stopped', now, worker)
return { 'ok' }
