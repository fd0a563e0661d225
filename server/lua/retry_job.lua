--- @include "retry"
-- ARGV: run id, job id. Retries one job of a finished run and what was
-- skipped below it. Returns {'ok', jobs retried} | {'active'} |
-- {'not_retryable', status} (it succeeded) | {'blocked', need, its status}
-- (a need of it did not succeed: retry that one) | {'not_found'}.
local run, job = ARGV[1], ARGV[2]
local now = now_ms()
local state = redis.call('HGET', rkey(run), 'state')
local st = redis.call('HGET', jkey(run, job), 'st')
if not state or not st then return { 'not_found' } end
if state == 'active' or state == 'delayed' then return { 'active' } end
if not RETRYABLE[st] then return { 'not_retryable', st } end
for _, need in ipairs(split(redis.call('HGET', jkey(run, job), 'needs'), ',')) do
  local nst = redis.call('HGET', jkey(run, need), 'st')
  if nst ~= 'success' then return { 'blocked', need, nst } end
end
local chosen = { [job] = true }
local queue = split(redis.call('HGET', jkey(run, job), 'deps'), ',')
local i = 1
while i <= #queue do
  local d = queue[i]
  local dst, deps = unpack(redis.call('HMGET', jkey(run, d), 'st', 'deps'))
  if dst == 'skipped' and not chosen[d] then
    chosen[d] = true
    for _, x in ipairs(split(deps, ',')) do queue[#queue + 1] = x end
  end
  i = i + 1
end
local n = reset_jobs(run, chosen, now)
reopen_run(run, chosen, now, 'retry of ' .. job)
return { 'ok', n }
