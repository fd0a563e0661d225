-- ARGV: lease_id, error, retryable (1|0). Returns {'ok'} | {'lost'} | {'cancelled'}.
local lid, err, retryable = ARGV[1], ARGV[2], ARGV[3] == '1'
local now = now_ms()
local lease, refusal = take_lease_for_result(lid, now)
if not lease then return refusal end
fail_attempt(lease.wf, lease.job, now, err, retryable)
return { 'ok' }
