--- @include "leases"
-- ARGV: lease_id, caller (see live_lease), error, retryable (1|0), digest of
-- this result, seconds to remember it.
-- Returns {'ok', 'retrying'|'failure'} | {'replayed', outcome} |
-- {'settled', outcome} | {'lost'} | {'forbidden'} | {'cancelled'}.
local lid, caller, err, retryable, digest, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1', ARGV[5], ARGV[6]
local now = now_ms()
local lease, refusal = take_lease_for_result(lid, now, caller)
if not lease then
  if refusal[1] == 'lost' then return replay(lid, caller, 'fail', digest) end
  return refusal
end
local outcome = fail_attempt(lease.run, lease.job, now, err, retryable, 'failure')
settle(lid, lease.tok, 'fail', digest, outcome, keep)
return { 'ok', outcome }
