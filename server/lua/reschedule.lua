--- @include "runs"
-- ARGV: run id, scheduled_at ms or '' , delay ms or '', how far ahead a
-- start may be scheduled (ms), the most new runs a paused workflow holds.
-- Moves a delayed run's start; a time now or past starts it at once (as a
-- run started now: see release_run).
-- Returns {'ok', scheduled_at} | {'not_found'} | {'not_delayed', status
-- word} | {'too_far', latest ms} | {'expires_first', expires_at}.
local run, abs, rel, ahead, most_held = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local r = rkey(run)
local state, exp, started = unpack(redis.call('HMGET', r, 'state', 'exp', 'started'))
if not state then return { 'not_found' } end
if state ~= 'delayed' then return { 'not_delayed', state == 'done' and 'finished' or 'started' } end
local now = now_ms()
local sat = abs ~= '' and tonumber(abs) or now + tonumber(rel)
if sat > now + ahead then return { 'too_far', num(now + ahead) } end
if exp and exp ~= '' and tonumber(exp) <= sat then return { 'expires_first', exp } end
redis.call('HSET', r, 'sat', num(sat))
event(run, '', 'run', 'delayed', 0, now, 'rescheduled to ' .. num(sat))
if sat <= now then
  redis.call('ZREM', P .. 'delayedruns', run)
  release_run(run, now, 'rescheduled to start now', most_held)
else
  redis.call('ZADD', P .. 'delayedruns', num(sat), run)
end
return { 'ok', num(sat) }
