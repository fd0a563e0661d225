--- @include "base"
-- One server process's counts since its last flush (server/metrics/flush.py),
-- added to the fleet's, and its own gauges.
--   m:n   hash: counters c:<name> and histogram bucket counts h:<name>:<label>:<i>
--   m:f   hash: histogram sums <name>:<label>
--   m:p   hash: process id -> "<flushed at ms> <SSE streams open>"
--   m:s   hash: process id -> "<its last batch added> <when, ms>": a batch
--         sent again (its reply was lost) is not added twice
-- ARGV: process id, the batch's sequence number, its gauges, how long (ms)
-- a process's gauges count without a flush, the number of integer
-- increments, then those as field, delta pairs, then float increments as
-- field, delta pairs.
-- Returns the processes dropped as stale.
local proc, seq, gauges, stale_ms, nints = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
local seen = redis.call('HGET', P .. 'm:s', proc)
local last = seen and tonumber(string.match(seen, '^(%d+)')) or 0
if seq > last then
  local at = 6
  for _ = 1, nints do
    redis.call('HINCRBY', P .. 'm:n', ARGV[at], ARGV[at + 1])
    at = at + 2
  end
  while ARGV[at] ~= nil do
    redis.call('HINCRBYFLOAT', P .. 'm:f', ARGV[at], ARGV[at + 1])
    at = at + 2
  end
  last = seq
end
redis.call('HSET', P .. 'm:s', proc, last .. ' ' .. now)
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
-- A process's last number is kept an hour past its last flush: longer
-- than any retry of a lost reply.
local seqs = redis.call('HGETALL', P .. 'm:s')
for i = 1, #seqs, 2 do
  local flushed = tonumber(string.match(seqs[i + 1], ' (%d+)$')) or 0
  if now - flushed > 3600000 then redis.call('HDEL', P .. 'm:s', seqs[i]) end
end
return dropped
