--- @include "base"
-- Ready queues. Each distinct set of required labels (its "label key",
-- "a,b" sorted; "" for none) has a sorted set `ready:<lk>`, scored by
-- priority, then by a global enqueue sequence (FIFO within a priority).
--
-- A claim must look only at queues it can serve, and only non-empty ones,
-- so its cost never grows with label sets nobody here can run or with
-- queues that have drained. So:
--   labelsets      the label keys whose queue is non-empty, exactly
--   wkeys          zset: each worker label key (what a claim offers) seen
--                  lately, scored by its last claim
--   serve:<wk>     the non-empty label keys that `wk` can serve
-- A queue turning non-empty or empty updates every serve set (a loop over
-- the worker label keys in use, a handful in practice); a claim then reads
-- one small set.

-- Whether a worker offering `wk` may run a job needing `lk`. A worker key
-- starting '!' is an exclusive worker's: it takes no job without labels.
local function serves(wk, lk)
  if string.sub(wk, 1, 1) == '!' then
    if lk == '' then return false end
    wk = string.sub(wk, 2)
  end
  local have = {}
  for _, l in ipairs(split(wk, ',')) do have[l] = true end
  for _, l in ipairs(split(lk, ',')) do
    if not have[l] then return false end
  end
  return true
end

-- `front`: ahead of every job of its priority (one handed back unrun).
local function make_ready(wf, job, lk, pr, front)
  local seq = 0
  if not front then seq = redis.call('INCR', P .. 'seq') end
  local score = (100 - tonumber(pr or 0)) * 4398046511104 + seq -- 2^42
  redis.call('ZADD', P .. 'ready:' .. lk, num(score), wf .. ':' .. job)
  if redis.call('SADD', P .. 'labelsets', lk) == 1 then
    for _, wk in ipairs(redis.call('ZRANGE', P .. 'wkeys', 0, -1)) do
      if serves(wk, lk) then redis.call('SADD', P .. 'serve:' .. wk, lk) end
    end
  end
  redis.call('PUBLISH', P .. 'wake', lk)
end

-- A label key whose queue is empty leaves every index at once.
local function drop_labelset(lk)
  if redis.call('SREM', P .. 'labelsets', lk) == 1 then
    for _, wk in ipairs(redis.call('ZRANGE', P .. 'wkeys', 0, -1)) do
      redis.call('SREM', P .. 'serve:' .. wk, lk)
    end
  end
end

-- Takes a job off its ready queue (claimed or cancelled).
local function unready(lk, member)
  redis.call('ZREM', P .. 'ready:' .. lk, member)
  if redis.call('EXISTS', P .. 'ready:' .. lk) == 0 then drop_labelset(lk) end
end

-- Worker label keys indexed at once, at most: a queue turning non-empty
-- loops over them all, so a token inventing label sets must not grow it.
-- Past it the least recently used is dropped (and re-indexed if it claims).
local MAX_WKEYS = 256

-- The label keys a claim offering `wk` may take from, indexing `wk` on its
-- first claim (or its first after going idle). The last-claim score is
-- refreshed at most once a minute: one write per worker key, not per claim.
local function servable(wk, now)
  local seen = redis.call('ZSCORE', P .. 'wkeys', wk)
  if not seen then
    if redis.call('ZCARD', P .. 'wkeys') >= MAX_WKEYS then
      local oldest = redis.call('ZPOPMIN', P .. 'wkeys')
      redis.call('DEL', P .. 'serve:' .. oldest[1])
    end
    for _, lk in ipairs(redis.call('SMEMBERS', P .. 'labelsets')) do
      if serves(wk, lk) then redis.call('SADD', P .. 'serve:' .. wk, lk) end
    end
  end
  if not seen or now - tonumber(seen) > 60000 then
    redis.call('ZADD', P .. 'wkeys', num(now), wk)
  end
  return redis.call('SMEMBERS', P .. 'serve:' .. wk)
end

-- Worker label keys no claim has offered for `idle_ms` are forgotten (the
-- reaper calls this), so the cost of a queue turning non-empty stays with
-- the label combinations actually in use.
local function forget_wkeys(now, idle_ms, limit)
  for _, wk in ipairs(redis.call('ZRANGEBYSCORE', P .. 'wkeys', '-inf', num(now - idle_ms), 'LIMIT', 0, limit)) do
    redis.call('ZREM', P .. 'wkeys', wk)
    redis.call('DEL', P .. 'serve:' .. wk)
  end
end
