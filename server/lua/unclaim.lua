--- @include "leases"
-- ARGV: lease_id. The client that claimed the job went away before it got
-- the answer: the job goes back to the head of its queue at once, its
-- attempt not counted, instead of waiting out the lease and failing an
-- attempt it never ran. Returns {'ok'} | {'lost'}.
local lid = ARGV[1]
local now = now_ms()
local run, job, worker = unpack(redis.call('HMGET', lkey(lid), 'run', 'job', 'worker'))
if not run then return { 'lost' } end
local k = jkey(run, job)
local st, cur, lk, pr, att, cg = unpack(jmget(k, 'st', 'lease', 'lk', 'pr', 'att', 'cg'))
release_lease(lid, worker)
if cur ~= lid or st ~= 'running' then return { 'lost' } end
redis.call('HSET', k, 'lease', '', 'worker', '', 'start', '')
redis.call('HDEL', akey(run, job), att) -- it never ran
to_ready(run, job, 'running', now, lk, pr, cg or '', true)
event(run, job, 'job', 'queued', tonumber(att), now, 'handed back: the claiming client went away')
redis.call('PUBLISH', jobchan(run, job), 'changed')
return { 'ok' }
