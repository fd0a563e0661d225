--- @include "leases"
-- ARGV: lease_id, caller (see live_lease), outputs (JSON object), digest of
-- this result, seconds to remember it, result_data (JSON; '' for none), max
-- output bytes.
-- Returns {'ok', 'success'} | {'replayed', outcome} | {'settled', outcome}
-- | {'lost'} | {'forbidden'} | {'cancelled'} | {'too_large', max}; 'ok'
-- also carries when the lease was granted and now (rota_job_duration_seconds).
local lid, caller, outputs, digest, keep, rdata, maxout = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6],
  tonumber(ARGV[7])
local now = now_ms()
local lease, refusal = live_lease(lid, now, caller)
if not lease then
  if refusal == 'lost' then return replay(lid, caller, 'complete', digest) end
  return { refusal }
end
-- Outputs the job upserted while running merge under the final ones, which
-- win on conflict; checked before anything changes.
if lease.lout == '1' and lease.st == 'running' then
  local merged = cjson.decode(jget(jkey(lease.run, lease.job), 'out'))
  local size = 0
  for key, value in pairs(cjson.decode(outputs)) do merged[key] = value end
  for key, value in pairs(merged) do size = size + #key + #value end
  if size > maxout then return { 'too_large', maxout } end
  outputs = cjson.encode(merged)
end
lease, refusal = take_lease(lid, lease, now)
if not lease then return refusal end
local run, job = lease.run, lease.job
local k = jkey(run, job)
record_attempt(run, job, lease.att, lease.worker, lease.start, now, 'success', '')
if rdata ~= '' then redis.call('HSET', k, 'rdata', rdata) end
succeed(run, job, 'running', outputs, now, nil, lease.row)
settle(lid, lease.tok, 'complete', digest, 'success', keep)
return { 'ok', 'success', tonumber(lease.start) or 0, now }
