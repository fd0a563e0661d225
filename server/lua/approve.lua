--- @include "release"
-- ARGV: run id, job id, payload JSON, who (for its event). Releases that one waiting job (a gate,
-- or a job waiting for an event). Returns {'ok'} | {'not_waiting', status}
-- | {'not_found'}.
local run, job, payload, who = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local st = jget(jkey(run, job), 'st')
if not st then return { 'not_found' } end
if st ~= 'eventwait' then return { 'not_waiting', st } end
release_wait(run, job, payload, now_ms(), 'approved by ' .. who)
return { 'ok' }
