--- @include "base"
-- ARGV: id. Deletes the token and tells every server replica (each caches
-- tokens in-process) on the `tokens` channel. Returns the token's fields
-- as a flat list, or {} when there is no such token.
local id = ARGV[1]
local key = P .. 'token:' .. id
local fields = redis.call('HGETALL', key)
if #fields == 0 then return {} end
redis.call('DEL', key)
redis.call('ZREM', P .. 'tokens', id)
redis.call('PUBLISH', P .. 'tokens', id)
return fields
