--- @include "keys"
-- Read only: the jobs running (under a lease, not cancelled) and delayed (in backoff) per
-- label set, for GET /metrics; the ready ones are each queue's ZCARD.
-- ARGV: the most entries of each index to look at.
-- Returns {leases, delayed, lk1, running1, delayed1, lk2, ...}: how many
-- each index holds (a label set's counts are of the first `most` of them).
local most = tonumber(ARGV[1])
local counts = {}
local order = {}
local function count(lk, slot)
  local c = counts[lk]
  if not c then
    c = { 0, 0 }
    counts[lk] = c
    order[#order + 1] = lk
  end
  c[slot] = c[slot] + 1
end
-- (a lease past its expiry, not yet reaped, runs nothing: left out)
for _, lid in ipairs(redis.call('ZRANGEBYSCORE', P .. 'leases', now_ms(), '+inf', 'LIMIT', 0, most)) do
  local run, job = unpack(redis.call('HMGET', lkey(lid), 'run', 'job'))
  -- (a job cancelled under its lease holds it until its worker stops)
  if run then
    local st, lk = unpack(jmget(jkey(run, job), 'st', 'lk'))
    if st == 'running' then count(lk, 1) end
  end
end
for _, m in ipairs(redis.call('ZRANGE', P .. 'delayed', 0, most - 1)) do
  local run, job = parse_member(m)
  if run then count(jget(jkey(run, job), 'lk'), 2) end
end
local out = { redis.call('ZCARD', P .. 'leases'), redis.call('ZCARD', P .. 'delayed') }
for _, lk in ipairs(order) do
  out[#out + 1] = lk
  out[#out + 1] = counts[lk][1]
  out[#out + 1] = counts[lk][2]
end
return out
