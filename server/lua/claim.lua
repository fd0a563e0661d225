--- @include "lib"
-- ARGV: worker_id, labels ("a,b", sorted; "!a,b" for an exclusive worker),
-- ttl_secs, lease_id, caller (the API token id; '' with auth off), claim_id
-- (the client's; '' for none).
-- Returns {-1} when another token owns the worker id, {0} when nothing
-- matches, else {1, granted_at, lease_id, ttl, wf, job, spec, att, enq, dly,
-- need1, out1, need2, out2, ...}.
local worker, labels, ttl, lid, caller, claim_id = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local now = now_ms()

local function reply(lease_id, wf, job, granted, lease_ttl)
  local spec, att, enq, dly, needs = unpack(redis.call('HMGET', jkey(wf, job), 'spec', 'att', 'enq', 'dly', 'needs'))
  local out = { 1, granted, lease_id, lease_ttl, wf, job, spec, att, enq, dly }
  for _, n in ipairs(split(needs, ',')) do
    out[#out + 1] = n
    out[#out + 1] = redis.call('HGET', jkey(wf, n), 'out') or ''
  end
  return out
end

-- Every claim, fruitful or not, shows the worker alive; one that claims
-- without registering is registered by its claim.
local wk = P .. 'worker:' .. worker
local fresh = redis.call('EXISTS', wk) == 0
if not own_worker(worker, caller) then return { -1 } end
if fresh then redis.call('HSET', wk, 'labels', (string.gsub(labels, '^!', '')), 'registered', now) end

-- A claim whose reply was lost, sent again: by the client with its
-- claim_id, or by the Redis client retrying this script (the same lease
-- id). Hand back that claim, while its lease lives, rather than lease a
-- second job.
local claim_key = P .. 'claimid:' .. worker .. ':' .. claim_id
for _, prior in ipairs({ lid, claim_id ~= '' and redis.call('GET', claim_key) or nil }) do
  local pwf, pjob, pgranted, pttl, pworker, ptok = unpack(redis.call('HMGET', lkey(prior),
    'wf', 'job', 'granted', 'ttl', 'worker', 'tok'))
  if pwf and pworker == worker and (ptok or '') == caller
      and redis.call('HGET', jkey(pwf, pjob), 'lease') == prior then
    return reply(prior, pwf, pjob, tonumber(pgranted), tonumber(pttl))
  end
end
promote_delayed(now, 100)
touch_worker(worker, now)

-- Look at the head of every non-empty queue this worker can serve and take
-- the best: a job nobody here can run never hides one that somebody can.
local best_lk, best_member, best_score = nil, nil, nil
for _, lk in ipairs(servable(labels, now)) do
  local head = redis.call('ZRANGE', P .. 'ready:' .. lk, 0, 0, 'WITHSCORES')
  if #head == 0 then
    drop_labelset(lk) -- an index out of step (data from an older version): mend it
  else
    local score = tonumber(head[2])
    if best_score == nil or score < best_score then
      best_lk, best_member, best_score = lk, head[1], score
    end
  end
end

if best_member == nil then return { 0 } end

unready(best_lk, best_member)
local wf, job = string.match(best_member, '^([^:]+):(.+)$')
local k = jkey(wf, job)
local att = redis.call('HGET', k, 'att')
set_status(wf, job, 'ready', 'running')
redis.call('HSET', k, 'lease', lid, 'worker', worker, 'start', now, 'end', '')

local w = wkey(wf)
if redis.call('HGET', w, 'started') ~= '1' then
  redis.call('HSET', w, 'started', 1, 'started_ms', now)
end

redis.call('HSET', lkey(lid), 'wf', wf, 'job', job, 'worker', worker, 'ttl', ttl,
  'att', att, 'granted', now, 'lseq', -1, 'tok', caller)
redis.call('ZADD', P .. 'leases', num(now + ttl * 1000), lid)
redis.call('SADD', P .. 'wleases:' .. worker, lid)
if claim_id ~= '' then redis.call('SET', claim_key, lid, 'EX', ttl) end
event(wf, job, 'running', tonumber(att), now, worker)
redis.call('PUBLISH', jobchan(wf, job), 'changed')
return reply(lid, wf, job, now, ttl)
