--- @include "leases"
-- What a running job reads through the in-job SDK, checked against its
-- lease like every other call (an ended lease reads nothing). ARGV:
-- lease_id, caller (see live_lease), what: 'state' (every key, value of the
-- run's state) | 'state_key', key | 'payload' | 'lease'.
-- Returns {'ok', ...} | {'lost'} | {'forbidden'} | {'waiting'}:
--   state:     {'ok', key1, value1, ...}
--   state_key: {'ok', value} ({'ok'} when unset)
--   payload:   {'ok', inputs, checkpoint record, event payload, need1, out1, ...}
--   lease:     {'ok', run, job, the run's jobs (comma-separated)}
local lid, caller, what = ARGV[1], ARGV[2], ARGV[3]
local lease, refusal = live_lease(lid, now_ms(), caller)
if not lease then return lease_gone(lid, caller, refusal) end
local run, job = lease.run, lease.job
if what == 'state' then
  local out = { 'ok' }
  for _, v in ipairs(redis.call('HGETALL', P .. 'state:' .. run)) do out[#out + 1] = v end
  return out
end
if what == 'lease' then return { 'ok', run, job, redis.call('HGET', rkey(run), 'jobs') } end
if what == 'state_key' then
  local v = redis.call('HGET', P .. 'state:' .. run, ARGV[4])
  return v and { 'ok', v } or { 'ok' }
end
local needs, ckat, evp = unpack(jmget(jkey(run, job), 'needs', 'ckat', 'evpayload'))
local out = { 'ok', redis.call('HGET', rkey(run), 'inputs') or '',
  ckat and redis.call('HGET', P .. 'ckpt:' .. run .. ':' .. job, ckat) or '', evp or '' }
for _, n in ipairs(split(needs, ',')) do
  out[#out + 1] = n
  out[#out + 1] = jget(jkey(run, n), 'out') or ''
end
return out
