--- @include "leases"
-- ARGV: lease_id, caller (see live_lease), error, retryable (1|0), digest of
-- this result, seconds to remember it, error type and stack (Restep's; ''
-- for none).
-- Returns {'ok', 'retrying'|'failure'} | {'replayed', outcome} |
-- {'settled', outcome} | {'lost'} | {'forbidden'} | {'cancelled'}; 'ok'
-- also carries when the lease was granted and now (rota_job_duration_seconds).
local lid, caller, err, retryable, digest, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1', ARGV[5], ARGV[6]
local etype, estack = ARGV[7] or '', ARGV[8] or ''
local now = now_ms()
local lease, refusal = take_lease_for_result(lid, now, caller)
if not lease then
  if refusal[1] == 'lost' then return replay(lid, caller, 'fail', digest) end
  return refusal
end
-- A worker's timeout (error type `timeout`, as `rota worker` sends it) is
-- an attempt of its own kind, `timed_out`, as a lease expiry is `lost`.
local outcome = fail_attempt(lease.run, lease.job, now, err, retryable, etype == 'timeout' and 'timed_out' or 'failure')
-- the job's final error's details (a retried attempt's go with it)
if outcome == 'failure' and (etype ~= '' or estack ~= '') then
  redis.call('HSET', jkey(lease.run, lease.job), 'etype', etype, 'estack', estack)
end
settle(lid, lease.tok, 'fail', digest, outcome, keep)
return { 'ok', outcome, tonumber(lease.start) or 0, now }
