--- @include "control"
--- @include "quota"
-- An operator's mark on a run, each one event: ARGV run id, op, then the
-- op's argument.
--   debug 1|0   debug mode (Strait's): shown on the run, nothing else
--   unidem      forgets the run's Idempotency-Key, so that key starts a new
--               run (the key's record goes only if it still names this run,
--               and with it its count against its token's cap)
-- Returns {'ok'} | {'not_found'} | {'no_key'} (unidem of a run started
-- without one).
local run, op = ARGV[1], ARGV[2]
local r = rkey(run)
if redis.call('EXISTS', r) == 0 then return { 'not_found' } end
local now = now_ms()
if op == 'debug' then
  redis.call('HSET', r, 'debug', ARGV[3])
  event(run, '', 'run', 'debug', 0, now, ARGV[3] == '1' and 'debug mode on' or 'debug mode off')
  return { 'ok' }
end
if op == 'unidem' then
  local idem, owner = unpack(redis.call('HMGET', r, 'idem', 'idemo'))
  if not idem or idem == '' then return { 'no_key' } end
  local key = P .. 'idem:' .. idem
  if string.match(redis.call('GET', key) or '', '^([^|]*)|') == run then
    redis.call('DEL', key)
    -- no longer kept: it counts against its token's cap no more
    if owner then redis.call('ZREM', quota_key('idem', owner), idem) end
  end
  redis.call('HDEL', r, 'idem', 'idemk', 'idemo')
  event(run, '', 'run', 'idempotency_key', 0, now, 'idempotency key reset')
  return { 'ok' }
end
return redis.error_reply('unknown op ' .. op)
