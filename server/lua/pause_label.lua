--- @include "control"
-- ARGV: label, who asked (a token id, or ''). Pauses a label's queues:
-- no claim takes a job that needs the label (every label set holding it
-- leaves the claim index), while the jobs already running finish; a fleet
-- drains without stopping its workers. Returns {'ok', label sets held
-- back, jobs queued in them} | {'noop'}.
local label, who = ARGV[1], ARGV[2]
local now = now_ms()
if redis.call('HSETNX', P .. 'plabels', label, num(now)) == 0 then return { 'noop' } end
local sets, queued = 0, 0
for _, lk in ipairs(redis.call('SMEMBERS', P .. 'labelsets')) do
  for _, l in ipairs(split(lk, ',')) do
    if l == label then
      drop_labelset(lk)
      redis.call('SADD', P .. 'plsets', lk)
      sets = sets + 1
      queued = queued + redis.call('ZCARD', P .. 'ready:' .. lk)
      break
    end
  end
end
control_event('label', label, 'paused', who, now, queued .. ' queued job(s) held')
note(string.format('label %s paused: %d queued job(s) held', label, queued))
return { 'ok', sets, queued }
