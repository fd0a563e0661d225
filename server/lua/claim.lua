-- ARGV: worker_id, labels ("a,b", sorted), ttl_secs, lease_id
-- Returns {0, now, next_due_ms | -1} when nothing matches, else
-- {1, granted_at, wf, job, spec, att, enq, dly, need1, out1, need2, out2, ...}.
local worker, labels, ttl, lid = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local now = now_ms()

local function reply(wf, job, granted)
  local spec, att, enq, dly, needs = unpack(redis.call('HMGET', jkey(wf, job), 'spec', 'att', 'enq', 'dly', 'needs'))
  local out = { 1, granted, wf, job, spec, att, enq, dly }
  for _, n in ipairs(split(needs, ',')) do
    out[#out + 1] = n
    out[#out + 1] = redis.call('HGET', jkey(wf, n), 'out') or ''
  end
  return out
end

-- The same lease id again is the client re-sending a claim whose reply it
-- lost: hand back that claim rather than lease a second job under one id.
local prior_wf, prior_job, prior_granted = unpack(redis.call('HMGET', lkey(lid), 'wf', 'job', 'granted'))
if prior_wf then return reply(prior_wf, prior_job, tonumber(prior_granted)) end
promote_delayed(now, 100)

-- Every claim, fruitful or not, shows the worker alive; one that claims
-- without registering is registered by its claim.
local wk = P .. 'worker:' .. worker
if redis.call('EXISTS', wk) == 0 then
  redis.call('HSET', wk, 'labels', labels, 'registered', now)
end
touch_worker(worker, now)

local have = {}
for _, l in ipairs(split(labels, ',')) do have[l] = true end

-- Look at the head of every label set this worker satisfies and take the
-- best: a job nobody here can run never hides one that somebody can.
local best_lk, best_member, best_score = nil, nil, nil
for _, lk in ipairs(redis.call('SMEMBERS', P .. 'labelsets')) do
  local ok = true
  for _, l in ipairs(split(lk, ',')) do
    if not have[l] then ok = false; break end
  end
  if ok then
    local head = redis.call('ZRANGE', P .. 'ready:' .. lk, 0, 0, 'WITHSCORES')
    if #head == 0 then
      redis.call('SREM', P .. 'labelsets', lk)
    else
      local score = tonumber(head[2])
      if best_score == nil or score < best_score then
        best_lk, best_member, best_score = lk, head[1], score
      end
    end
  end
end

if best_member == nil then
  local nxt = redis.call('ZRANGE', P .. 'delayed', 0, 0, 'WITHSCORES')
  local due = -1
  if #nxt > 0 then due = tonumber(nxt[2]) end
  return { 0, now, due }
end

redis.call('ZREM', P .. 'ready:' .. best_lk, best_member)
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
  'att', att, 'granted', now, 'lseq', -1)
redis.call('ZADD', P .. 'leases', num(now + ttl * 1000), lid)
redis.call('SADD', P .. 'wleases:' .. worker, lid)
event(wf, job, 'running', tonumber(att), now, worker)
redis.call('PUBLISH', jobchan(wf, job), 'changed')
return reply(wf, job, now)
