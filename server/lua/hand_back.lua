--- @include "leases"
-- ARGV: lease_id, caller (see live_lease), reason, digest of this request,
-- seconds to remember it, max hand-backs (MAX_HANDBACKS).
-- The worker stopped (a graceful shutdown past its drain timeout) and gives
-- the job back: the attempt is recorded `handed_back`, the job goes to the
-- head of its queue and runs again as a new attempt that spends no retry,
-- as a job resumed after waiting for an event does. Past max hand-backs
-- (counted until the job is retried by hand) a hand-back counts as a
-- failed attempt instead, so a job that keeps stopping its workers ends.
-- Returns {'ok', 'handed_back'|'retrying'|'failure'} | {'replayed', outcome}
-- | {'settled', outcome} | {'lost'} | {'forbidden'} | {'cancelled'}.
local lid, caller, reason, digest, keep, maxhb = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local now = now_ms()
local lease, refusal = take_lease_for_result(lid, now, caller)
if not lease then
  if refusal[1] == 'lost' then return replay(lid, caller, 'release', digest) end
  return refusal
end
local run, job = lease.run, lease.job
local k = jkey(run, job)
local why = 'handed back by worker ' .. (lease.worker or '?')
if reason ~= '' then why = why .. ': ' .. reason end
local handbacks = redis.call('HINCRBY', k, 'hb', 1)
local outcome
if handbacks > maxhb then
  outcome = fail_attempt(run, job, now, string.format(
    '%s (handed back %d times, more than %d: this one counts as a failed attempt)', why, handbacks, maxhb),
    true, 'failure', nil, 'handback_limit')
else
  local att, base, lk, pr, start, cg = unpack(jmget(k, 'att', 'base', 'lk', 'pr', 'start', 'cg'))
  att = tonumber(att) or 0
  record_attempt(run, job, att, lease.worker, start, now, 'handed_back', why)
  -- a new attempt, its retry budget untouched, without what this one upserted
  redis.call('HSET', k, 'att', att + 1, 'base', (tonumber(base) or 0) + 1, 'out', '', 'lout', '', 'err', '',
    'lease', '', 'worker', '', 'start', '', 'enq', now, 'dly', 0)
  clear_attempt(k)
  to_ready(run, job, 'running', now, lk, pr, cg or '', true)
  event(run, job, 'job', 'queued', att + 1, now, why)
  note(string.format('job %s/%s attempt %d %s', run, job, att, why))
  redis.call('PUBLISH', jobchan(run, job), 'changed')
  outcome = 'handed_back'
end
settle(lid, lease.tok, 'release', digest, outcome, keep)
return { 'ok', outcome }
