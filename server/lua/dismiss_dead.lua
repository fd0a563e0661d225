--- @include "keys"
-- ARGV: run id, job id. Removes a dead letter (the job stays as it is).
-- Returns {'ok'} | {'not_found'}.
local removed = redis.call('ZREM', P .. 'dead', member(ARGV[1], ARGV[2]))
if removed == 0 then return { 'not_found' } end
redis.call('HINCRBY', rkey(ARGV[1]), 'ndead', -1)
return { 'ok' }
