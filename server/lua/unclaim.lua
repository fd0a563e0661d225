--- @include "lib"
-- ARGV: lease_id. The client that claimed the job went away before it got
-- the answer: the job goes back to the head of its queue at once, its
-- attempt not counted, instead of waiting out the lease and failing an
-- attempt it never ran. Returns {'ok'} | {'lost'}.
local lid = ARGV[1]
local now = now_ms()
local wf, job, worker = unpack(redis.call('HMGET', lkey(lid), 'wf', 'job', 'worker'))
if not wf then return { 'lost' } end
local k = jkey(wf, job)
local st, cur, lk, pr, att = unpack(redis.call('HMGET', k, 'st', 'lease', 'lk', 'pr', 'att'))
release_lease(lid, worker)
if cur ~= lid or st ~= 'running' then return { 'lost' } end
set_status(wf, job, 'running', 'ready')
redis.call('HSET', k, 'lease', '', 'worker', '', 'start', '')
make_ready(wf, job, lk, pr, true)
event(wf, job, 'queued', tonumber(att), now, 'handed back: the claiming client went away')
redis.call('PUBLISH', jobchan(wf, job), 'changed')
return { 'ok' }
