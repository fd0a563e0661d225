--- @include "lib"
-- ARGV: lease_id, caller (see live_lease), error, retryable (1|0).
-- Returns {'ok'} | {'lost'} | {'forbidden'} | {'cancelled'}.
local lid, caller, err, retryable = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
local now = now_ms()
local lease, refusal = take_lease_for_result(lid, now, caller)
if not lease then return refusal end
fail_attempt(lease.wf, lease.job, now, err, retryable)
return { 'ok' }
