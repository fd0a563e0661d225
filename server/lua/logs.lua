--- @include "logbudget"
-- ARGV: lease_id, caller (see live_lease), maxlen, the attempt's byte budget,
-- then per chunk: workflow_id, job_id, sequence, json (chunks sorted by
-- sequence). Returns {'ok', accepted, duplicates, dropped} | {'lost'} |
-- {'forbidden'} | {'mismatch', index} | {'full'}. The request that fills the
-- attempt's budget keeps the new chunks that fit, in order, drops the rest
-- (`dropped`) and writes the marker line (see _logbudget.lua); after it, a
-- request with any new chunk is {'full'} and changes nothing. A lease given
-- up by a wait for an event still takes the job's last output. Idempotent:
-- a chunk whose sequence is not above the highest one accepted for this
-- lease is a resend and is dropped.
local lid, caller, maxlen, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local now = now_ms()
local lease, refusal = live_lease(lid, now, caller)
if not lease then
  lease = waited_lease(lid, caller)
  if not lease then return { refusal } end
end
local first = 5
local n = (#ARGV - first + 1) / 4
for i = 0, n - 1 do
  local b = first + i * 4
  if ARGV[b] ~= lease.wf or ARGV[b + 1] ~= lease.job then return { 'mismatch', i } end
end
-- (a waited lease's record is gone: its last chunks are taken as sent)
local hwm = tonumber(redis.call('HGET', lkey(lid), 'lseq')) or -1
local run, job, att = lease.run, lease.job, lease.att
local key = logkey(run, job)
local spent = log_spent(run, job, att)
local accepted, duplicates, cut_at = 0, 0, nil
for i = 0, n - 1 do
  local b = first + i * 4
  local seq, chunk = tonumber(ARGV[b + 2]), ARGV[b + 3]
  if seq <= hwm then
    duplicates = duplicates + 1
  elseif spent + #chunk > limit then
    cut_at = seq
    break
  else
    redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'c', chunk, 'a', att)
    spent = spent + #chunk
    hwm = seq
    accepted = accepted + 1
  end
end
-- already full: nothing new may go in, and this request changes nothing
if cut_at and accepted == 0 and log_closed(run, job, att) then return { 'full' } end
if accepted > 0 then
  log_spend(run, job, att, spent)
  if not lease.waited then redis.call('HSET', lkey(lid), 'lseq', num(hwm)) end
  redis.call('PUBLISH', jobchan(run, job), 'log')
end
if not lease.waited then touch_worker(lease.worker, now) end
if cut_at then log_cut(run, job, lease.wf, att, cut_at, now, limit, maxlen) end
return { 'ok', accepted, duplicates, n - accepted - duplicates }
