--- @include "keys"
-- ARGV: run id, job id. Removes a dead letter (the job stays as it is).
-- Returns {'ok'} | {'not_found'}.
local removed = redis.call('ZREM', P .. 'dead', member(ARGV[1], ARGV[2]))
if removed == 0 then return { 'not_found' } end
return { 'ok' }
