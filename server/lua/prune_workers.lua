--- @include "base"
-- ARGV: pairs of worker id, its last-seen time (ms) as the caller read it
-- when it judged the worker gone. Each is removed as deregister.lua does,
-- unless it was seen since (its last-seen time moved on: it is alive) or
-- is already stopped. Returns the ids removed.
local now = now_ms()
local removed = {}
for i = 1, #ARGV, 2 do
  local worker, seen = ARGV[i], ARGV[i + 1]
  local wk = P .. 'worker:' .. worker
  local last, stopped = unpack(redis.call('HMGET', wk, 'last_seen', 'stopped'))
  if last == seen and (stopped or '') == '' then
    redis.call('HSET', wk, 'stopped', now)
    redis.call('ZADD', P .. 'stopped', now, worker)
    removed[#removed + 1] = worker
  end
end
return removed
