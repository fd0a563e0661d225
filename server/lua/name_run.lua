--- @include "keys"
-- ARGV: run id, name. A run's name as its definition's run-name rendered
-- when it started (by the server, after `start` or `define` numbered it).
-- Returns {'ok'} | {'not_found'}.
if redis.call('EXISTS', rkey(ARGV[1])) == 0 then return { 'not_found' } end
redis.call('HSET', rkey(ARGV[1]), 'name', ARGV[2])
return { 'ok' }
