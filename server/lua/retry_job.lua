--- @include "retry"
-- ARGV: run id, job id. Retries one job of a finished run and what was
-- skipped below it (a matrix combination: its matrix job). Returns {'ok',
-- jobs retried} | {'active'} | {'not_retryable', status} (it succeeded) |
-- {'blocked', need, its status} (a need of it did not succeed and its if:
-- does not ask about that: retry that one) | {'not_found'}.
local run, job = ARGV[1], ARGV[2]
local now = now_ms()
local state = redis.call('HGET', rkey(run), 'state')
local st, agg = unpack(jmget(jkey(run, job), 'st', 'agg'))
if not state or not st then return { 'not_found' } end
if state == 'active' or state == 'delayed' then return { 'active' } end
if agg and agg ~= '' then
  job = agg
  st = jget(jkey(run, job), 'st')
end
if not RETRYABLE[st] then return { 'not_retryable', st } end
if not has(jget(jkey(run, job), 'fl'), 'a') then
  for _, need in ipairs(split(jget(jkey(run, job), 'needs'), ',')) do
    local nst, ncf = unpack(jmget(jkey(run, need), 'st', 'cf'))
    if conclusion(nst, ncf) ~= 'success' then return { 'blocked', need, nst } end
  end
end
local chosen = { [job] = true }
local queue = split(jget(jkey(run, job), 'deps'), ',')
local i = 1
while i <= #queue do
  local d = queue[i]
  local dst, deps = unpack(jmget(jkey(run, d), 'st', 'deps'))
  if dst == 'skipped' and not chosen[d] then
    chosen[d] = true
    for _, x in ipairs(split(deps, ',')) do queue[#queue + 1] = x end
  end
  i = i + 1
end
local n = reset_jobs(run, chosen, now)
reopen_run(run, chosen, now, 'retry of ' .. job)
return { 'ok', n }
