--- @include "release"
-- ARGV: event key, payload JSON. Wakes every job waiting on the key.
-- Returns {'ok', jobs released}.
local key, payload = ARGV[1], ARGV[2]
local now = now_ms()
local n = 0
for _, m in ipairs(redis.call('SMEMBERS', P .. 'evwait:' .. key)) do
  local run, job = parse_member(m)
  if jget(jkey(run, job), 'st') == 'eventwait' then
    release_wait(run, job, payload, now, 'event ' .. key .. ' arrived')
    n = n + 1
  end
end
redis.call('DEL', P .. 'evwait:' .. key)
return { 'ok', n }
