--- @include "jobs"
-- ARGV: run id. Returns {'ok'} | {'noop'} (finished already) | {'not_found'}.
-- Queued jobs end at once; a running job is marked cancelled and keeps its
-- lease, so its worker learns it from its heartbeat and its last logs are
-- still accepted, while complete/fail get 409. A job not yet started whose
-- if: calls a status function (`if: always()`, `if: cancelled()`) is not
-- cancelled: it is decided once its needs have settled, cancelled()
-- answering true (GitHub's cleanup jobs). A second cancel of a cancelled
-- run cancels those too.
local run = ARGV[1]
local now = now_ms()
local r = rkey(run)
local state, jobs, before = unpack(redis.call('HMGET', r, 'state', 'jobs', 'cancelled'))
if not state then return { 'not_found' } end
if state ~= 'active' and state ~= 'delayed' then return { 'noop' } end
-- a delayed run is cancelled before it starts: it goes as any run does, and
-- none of its jobs runs (nothing of it started for an always() to clean up)
local force = before == '1' or state == 'delayed'
redis.call('ZREM', P .. 'delayedruns', run)
redis.call('HSET', r, 'cancelled', 1, 'state', 'active')
local ended = {}
for _, job in ipairs(split(jobs, ',')) do
  local st, fl = unpack(jmget(jkey(run, job), 'st', 'fl'))
  local spared = has(fl, 'a') and (st == 'waiting' or st == 'deciding')
  if (force or not spared) and cancel_one(run, job, now, 'run cancelled') then ended[#ended + 1] = job end
end
-- what the spared jobs wait for has settled now
for _, job in ipairs(ended) do cascade(run, job, now) end
maybe_finish(run, now)
return { 'ok' }
