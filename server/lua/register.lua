-- ARGV: worker_id, labels ("a,b"). Returns {'ok', registered_at_ms}.
local worker, labels = ARGV[1], ARGV[2]
local now = now_ms()
redis.call('HSET', P .. 'worker:' .. worker, 'labels', labels, 'registered', now)
touch_worker(worker, now)
return { 'ok', now }
