--- @include "base"
-- ARGV: id1, last_used_ms1, id2, last_used_ms2, ... (each replica flushes
-- the last-use times it saw every few seconds, off the request path).
-- A token revoked meanwhile stays deleted; a time never moves backwards.
for i = 1, #ARGV, 2 do
  local key = P .. 'token:' .. ARGV[i]
  if redis.call('EXISTS', key) == 1 then
    local seen = tonumber(redis.call('HGET', key, 'last_used')) or 0
    if tonumber(ARGV[i + 1]) > seen then redis.call('HSET', key, 'last_used', ARGV[i + 1]) end
  end
end
return #ARGV / 2
