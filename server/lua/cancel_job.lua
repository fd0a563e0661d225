--- @include "leases"
-- ARGV: run id, job id; or 'lease', lease id, caller (see live_lease): a
-- running job cancelling itself (Restep's executor cancel). Cancels one job
-- of a run (see cancel_one), and a matrix job's combinations with it; what
-- comes after it hears it was cancelled (skipped, unless its if: asks),
-- the rest of the run goes on. Returns {'ok', run, job} | {'noop', run,
-- job} (finished already) | {'not_found'} | {'lost'} | {'forbidden'} |
-- {'waiting'}.
local run, job = ARGV[1], ARGV[2]
local now = now_ms()
if run == 'lease' then
  local lease, refusal = live_lease(ARGV[2], now, ARGV[3])
  if not lease then return lease_gone(ARGV[2], ARGV[3], refusal) end
  run, job = lease.run, lease.job
end
if not jget(jkey(run, job), 'st') then return { 'not_found' } end
if not cancel_one(run, job, now, 'job cancelled') then return { 'noop', run, job } end
for _, combo in ipairs(split(jget(jkey(run, job), 'combos'), ',')) do
  cancel_one(run, combo, now, 'matrix job ' .. job .. ' cancelled')
end
cascade(run, job, now)
maybe_finish(run, now)
return { 'ok', run, job }
