--- @include "base"
-- One server process's counts since its last flush (server/metrics/flush.py),
-- added to the fleet's, and its own gauges.
--   m:n   hash: counters c:<name> and histogram bucket counts h:<name>:<label>:<i>
--   m:f   hash: histogram sums <name>:<label>
--   m:p   hash: process id -> "<flushed at ms> <SSE streams open>"
-- ARGV: process id, its gauges, how long (ms) a process's gauges count
-- without a flush, the number of integer increments, then those as field,
-- delta pairs, then float increments as field, delta pairs.
-- Returns the processes dropped as stale.
local proc, gauges, stale_ms, nints = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
local at = 5
for _ = 1, nints do
  redis.call('HINCRBY', P .. 'm:n', ARGV[at], ARGV[at + 1])
  at = at + 2
end
while ARGV[at] ~= nil do
  redis.call('HINCRBYFLOAT', P .. 'm:f', ARGV[at], ARGV[at + 1])
  at = at + 2
end
-- ('' for a process that stops: its gauges go with it)
if gauges == '' then
  redis.call('HDEL', P .. 'm:p', proc)
else
  redis.call('HSET', P .. 'm:p', proc, now .. ' ' .. gauges)
end
-- A process killed without a goodbye stops flushing: its gauges go.
local dropped = 0
local procs = redis.call('HGETALL', P .. 'm:p')
for i = 1, #procs, 2 do
  local flushed = tonumber(string.match(procs[i + 1], '^(%d+)')) or 0
  if now - flushed > stale_ms then
    redis.call('HDEL', P .. 'm:p', procs[i])
    dropped = dropped + 1
  end
end
return dropped
