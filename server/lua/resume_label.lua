--- @include "control"
-- ARGV: label, who asked (a token id, or ''), most wake-ups to send. The
-- label's queues join the claim index again (those needing no other paused
-- label), and parked claims are woken for their jobs.
-- Returns {'ok', jobs queued again} | {'noop'}.
local label, who, wakes = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = now_ms()
if redis.call('HDEL', P .. 'plabels', label) == 0 then return { 'noop' } end
local queued = 0
for _, lk in ipairs(redis.call('SMEMBERS', P .. 'plsets')) do
  if not lk_paused(lk) then
    redis.call('SREM', P .. 'plsets', lk)
    local n = redis.call('ZCARD', P .. 'ready:' .. lk)
    if n > 0 then
      join_claim_index(lk)
      queued = queued + n
      -- one wake-up per job (see server/notifier.py), within reason
      for _ = 1, math.min(n, wakes) do redis.call('PUBLISH', P .. 'wake', lk) end
    end
  end
end
control_event('label', label, 'resumed', who, now, queued .. ' queued job(s) let go')
note(string.format('label %s resumed: %d queued job(s) let go', label, queued))
return { 'ok', queued }
