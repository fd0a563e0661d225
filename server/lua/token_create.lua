--- @include "base"
-- ARGV: id, name, scopes ("a,b"), sha256 of the secret (hex), expires_in_secs
-- ('' for never). Returns {created_ms, expires_ms or ''}.
local id, name, scopes, hash, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now = now_ms()
local expires = ''
if ttl ~= '' then expires = num(now + tonumber(ttl) * 1000) end
redis.call('HSET', P .. 'token:' .. id, 'name', name, 'scopes', scopes, 'hash', hash,
  'created', now, 'expires', expires, 'last_used', '')
redis.call('ZADD', P .. 'tokens', now, id)
return { now, expires }
