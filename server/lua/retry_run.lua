--- @include "retry"
-- ARGV: run id. Re-runs the failed, cancelled and skipped jobs of a
-- finished run, as new attempts in that run (GitHub's "re-run failed
-- jobs"); a matrix's combinations go with their matrix job. Returns {'ok',
-- jobs retried} | {'active'} | {'noop'} (nothing failed) | {'not_found'}.
local run = ARGV[1]
local now = now_ms()
local state, jobs = unpack(redis.call('HMGET', rkey(run), 'state', 'jobs'))
if not state then return { 'not_found' } end
if state == 'active' or state == 'delayed' then return { 'active' } end
local chosen = {}
for _, job in ipairs(split(jobs, ',')) do
  local st, agg = unpack(jmget(jkey(run, job), 'st', 'agg'))
  if RETRYABLE[st] and (agg or '') == '' then chosen[job] = true end
end
local n = reset_jobs(run, chosen, now)
if n == 0 then return { 'noop' } end
reopen_run(run, chosen, now, 'retry of ' .. n .. ' job(s)')
return { 'ok', n }
