--- @include "leases"
-- ARGV: lease_id, caller (see live_lease), maxlen, then per chunk:
-- workflow_id, job_id, sequence, json (chunks sorted by sequence).
-- Returns {'ok', accepted, duplicates} | {'lost'} | {'forbidden'} |
-- {'mismatch', index}. A lease given up by a wait for an event still takes
-- the job's last output. Idempotent: a chunk whose sequence is not
-- above the highest one accepted for this lease is a resend and is dropped.
local lid, caller, maxlen = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
local lease, refusal = live_lease(lid, now, caller)
if not lease then
  lease = waited_lease(lid, caller)
  if not lease then return { refusal } end
end
local n = (#ARGV - 3) / 4
for i = 0, n - 1 do
  local b = 3 + i * 4
  if ARGV[b + 1] ~= lease.wf or ARGV[b + 2] ~= lease.job then return { 'mismatch', i } end
end
-- (a waited lease's record is gone: its last chunks are taken as sent)
local hwm = tonumber(redis.call('HGET', lkey(lid), 'lseq')) or -1
local key = logkey(lease.run, lease.job)
local accepted = 0
for i = 0, n - 1 do
  local b = 3 + i * 4
  local seq = tonumber(ARGV[b + 3])
  if seq > hwm then
    redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'c', ARGV[b + 4], 'a', lease.att)
    hwm = seq
    accepted = accepted + 1
  end
end
if accepted > 0 then
  if not lease.waited then redis.call('HSET', lkey(lid), 'lseq', num(hwm)) end
  redis.call('PUBLISH', jobchan(lease.run, lease.job), 'log')
end
if not lease.waited then touch_worker(lease.worker, now) end
return { 'ok', accepted, n - accepted }
