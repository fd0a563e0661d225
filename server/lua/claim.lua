--- @include "states"
--- @include "workers"
--- @include "claimed"
-- ARGV: worker_id, labels ("a,b", sorted; "!a,b" for an exclusive worker),
-- ttl_secs, lease_id, caller (the API token id; '' with auth off), claim_id
-- (the client's; '' for none), the most worker ids a token may hold; from
-- claim_many only, which keeps a batch's claim_id record itself: '1', and
-- the lease this claim made before when the batch is sent again ('' for none).
-- Returns {-1} when another token owns the worker id, {-2} when the worker
-- id is new and the caller holds that many already, {0} when nothing
-- matches, else {1, granted_at, lease_id, ttl, run, wf, job, spec, att, enq,
-- dly, inputs, checkpoint record, event payload, decided fields (JSON; ''
-- for a job not decided), run number, triggered_by, tags, run attempt,
-- need1, out1, result1, need2, out2, result2, ...}.
local worker, labels, ttl, lid, caller, claim_id = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local max_workers = tonumber(ARGV[7])
local in_batch, batch_prior = ARGV[8] == '1', ARGV[9]
local now = now_ms()

-- `jrow`, `rrow`: the job's and the run's fields as read by the caller
-- (JOB_FIELDS, RUN_FIELDS), when it has read them already.
local JOB_FIELDS = { 'att', 'enq', 'dly', 'needs', 'ckat', 'evpayload', 'tpl', 'dec' }
local RUN_FIELDS = { 'wf', 'ver', 'inputs', 'num', 'by', 'tags', 'ratt', 'started' }
local function reply(lease_id, run, job, granted, lease_ttl, jrow, rrow)
  local att, enq, dly, needs, ckat, evp, tpl, dec = unpack(jrow or jmget(jkey(run, job), unpack(JOB_FIELDS)))
  local wf, ver, inputs, num_, by, tags, ratt = unpack(rrow or redis.call('HMGET', rkey(run), unpack(RUN_FIELDS)))
  -- a matrix combination runs its matrix job's spec, with its own decided fields
  local of = (tpl and tpl ~= '') and tpl or job
  local spec = def_spec(dkey(wf, ver), of) or redis.call('HGET', P .. 'rdef:' .. run, 's:' .. of)
  local decided = dec == '1' and redis.call('HGET', P .. 'jdec:' .. run, job) or ''
  -- what a resumed job starts from: its latest checkpoint, the event it waited for
  local ckpt = ckat and redis.call('HGET', P .. 'ckpt:' .. run .. ':' .. job, ckat) or ''
  local out = { 1, granted, lease_id, lease_ttl, run, wf, job, spec, att, enq, dly, inputs, ckpt, evp or '',
                decided or '', num_ or 0, by or '', tags or '', ratt or 1 }
  for _, n in ipairs(split(needs, ',')) do
    local nout, nst, ncf = unpack(jmget(jkey(run, n), 'out', 'st', 'cf'))
    out[#out + 1] = n
    out[#out + 1] = nout or ''
    -- what the job's needs context says: a continue-on-error failure concludes success
    out[#out + 1] = (nst == 'failure' and ncf == '1') and 'success' or (nst or '')
  end
  return out
end

-- Every claim, fruitful or not, shows the worker alive; one that claims
-- without registering is registered by its claim.
local wk = P .. 'worker:' .. worker
local claimant = worker .. '\0' .. caller
if not CLAIMANTS[claimant] then
  local fresh = redis.call('EXISTS', wk) == 0
  local owned = own_worker(worker, caller, max_workers, fresh)
  if owned ~= 'ok' then return { owned == 'taken' and -1 or -2 } end
  if fresh then redis.call('HSET', wk, 'labels', (string.gsub(labels, '^!', '')), 'registered', now) end
  CLAIMANTS[claimant] = true
end

-- A claim whose reply was lost, sent again: by the client with its
-- claim_id, or by the Redis client retrying this script (the same lease
-- id). Hand back that claim, while its lease lives, rather than lease a
-- second job.
local claim_key = P .. 'claimid:' .. worker .. ':' .. claim_id
-- (a claim_id names its lease from the call that leased it: a retried call's
-- own lease id is then found through it; a batch's record lists its leases)
-- (a plain claim is a batch of one: the record's first lease is its own)
local record = claim_id ~= '' and not in_batch and redis.call('GET', claim_key) or nil
local function prior_lease()
  if claim_id == '' then return lid end
  if in_batch then return batch_prior ~= '' and batch_prior or nil end
  return record and string.match(record, '^[^,]+') or nil
end
for _, prior in ipairs({ prior_lease() }) do
  local prun, pjob, pgranted, pttl, pworker, ptok = unpack(redis.call('HMGET', lkey(prior),
    'run', 'job', 'granted', 'ttl', 'worker', 'tok'))
  if prun and pworker == worker and (ptok or '') == caller
      and jget(jkey(prun, pjob), 'lease') == prior then
    return reply(prior, prun, pjob, tonumber(pgranted), tonumber(pttl))
  end
end
promote_delayed(now, 100)
touch_worker(worker, now)

-- Look at the head of every non-empty queue this worker can serve and take
-- the best: a job nobody here can run never hides one that somebody can.
-- (the first two: whether the one taken is a queue's last)
local best_lk, best_member, best_score, best_last = nil, nil, nil, nil
for _, lk in ipairs(servable(labels)) do
  local head = redis.call('ZRANGE', P .. 'ready:' .. lk, 0, 1, 'WITHSCORES')
  if #head == 0 then
    drop_labelset(lk) -- an index out of step (data from an older version): mend it
  else
    local score = tonumber(head[2])
    if best_score == nil or score < best_score then
      best_lk, best_member, best_score, best_last = lk, head[1], score, #head == 2
    end
  end
end

if best_member == nil then return { 0 } end

unready(best_lk, best_member, best_last)
local run, job = parse_member(best_member)
local k = jkey(run, job)
-- the job's and its run's fields, read once for the claim and its reply
local jrow = jmget(k, unpack(JOB_FIELDS))
local att = jrow[1]
set_status(run, job, 'ready', 'running', nil, { 'lease', lid, 'worker', worker, 'start', now, 'end', '' })

local r = rkey(run)
local rrow = CLAIMED_RUNS[run] or redis.call('HMGET', r, unpack(RUN_FIELDS))
CLAIMED_RUNS[run] = rrow
local wf, started = rrow[1], rrow[8]
if started ~= '1' then
  redis.call('HSET', r, 'started', 1, 'started_ms', now)
  rrow[8] = '1'
  event(run, '', 'run', 'running', 0, now, 'first job claimed')
end

redis.call('HSET', lkey(lid), 'run', run, 'job', job, 'wf', wf, 'worker', worker, 'ttl', ttl,
  'att', att, 'granted', now, 'lseq', -1, 'tok', caller)
redis.call('ZADD', P .. 'leases', num(now + ttl * 1000), lid)
redis.call('SADD', P .. 'wleases:' .. worker, lid)
if claim_id ~= '' and not in_batch then
  -- the first lease of the record is this claim's; a batch's others stay in it
  redis.call('SET', claim_key, lid .. (record and string.match(record, '^[^,]*(,.*)$') or ''), 'EX', ttl)
end
event(run, job, 'job', 'running', tonumber(att), now, worker)
redis.call('PUBLISH', jobchan(run, job), 'changed')
return reply(lid, run, job, now, ttl, jrow, rrow)
