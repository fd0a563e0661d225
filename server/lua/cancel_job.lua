--- @include "jobs"
-- ARGV: run id, job id. Cancels one job of a run: queued, it ends at once;
-- running, it is marked cancelled and its worker learns it from its
-- heartbeat. Everything downstream of it is skipped; the rest of the run
-- goes on. Returns {'ok'} | {'noop'} (finished already) | {'not_found'}.
local run, job = ARGV[1], ARGV[2]
local now = now_ms()
local k = jkey(run, job)
local st, lk, att = unpack(redis.call('HMGET', k, 'st', 'lk', 'att'))
if not st then return { 'not_found' } end
if not ACTIVE[st] then return { 'noop' } end
if st == 'ready' then unready(lk, member(run, job)) end
if st == 'delayed' then redis.call('ZREM', P .. 'delayed', member(run, job)) end
set_status(run, job, st, 'cancelled')
redis.call('HSET', k, 'end', now)
event(run, job, 'job', 'cancelled', tonumber(att), now, 'job cancelled')
redis.call('PUBLISH', jobchan(run, job), 'changed')
skip_downstream(run, job, now, 'upstream ' .. job .. ' cancelled')
maybe_finish(run, now)
return { 'ok' }
