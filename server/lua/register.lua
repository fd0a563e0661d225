--- @include "lib"
-- ARGV: worker_id, labels ("a,b"), caller (API token id; '' with auth off).
-- Returns {'ok', registered_at_ms} | {'taken'} (another token owns the id).
local worker, labels, caller = ARGV[1], ARGV[2], ARGV[3]
if not own_worker(worker, caller) then return { 'taken' } end
local now = now_ms()
redis.call('HSET', P .. 'worker:' .. worker, 'labels', labels, 'registered', now)
touch_worker(worker, now)
return { 'ok', now }
