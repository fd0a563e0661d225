--- @include "schedules"
-- ARGV: schedule id, 'pause' | 'resume'. A paused schedule fires nothing;
-- resumed, it counts ticks from now on (the ones it slept through are not
-- caught up, as Temporal's unpause).
-- Returns {'ok'} | {'noop'} (already so) | {'not_found'}.
local id, action = ARGV[1], ARGV[2]
local k = skey(id)
local paused = redis.call('HGET', k, 'paused')
if not paused then return { 'not_found' } end
local now = now_ms()
if action == 'pause' then
  if paused == '1' then return { 'noop' } end
  redis.call('HSET', k, 'paused', 1, 'pausedat', now)
  redis.call('ZREM', P .. 'schedq', id)
  note('schedule ' .. id .. ' paused')
else
  if paused ~= '1' then return { 'noop' } end
  redis.call('HSET', k, 'paused', 0, 'pausedat', '', 'last', now, 'next', 0)
  redis.call('ZADD', P .. 'schedq', 0, id)
  note('schedule ' .. id .. ' resumed')
end
return { 'ok' }
