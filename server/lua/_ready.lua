--- @include "base"
-- Ready queues. Each distinct set of required labels (its "label key",
-- "a,b" sorted; "" for none) has a sorted set `ready:<lk>`, scored by
-- priority, then by a global enqueue sequence (FIFO within a priority).
--
-- A claim must look only at the non-empty queues it can serve, and its cost
-- must not grow with label sets it cannot serve: a worker offering labels
-- never seen before costs what one offering familiar labels does, and
-- nothing is kept per worker label key. So:
--   labelsets   set: the label keys whose queue is non-empty, exactly
--   lsindex     hash: the label-set trie. For each prefix p of a non-empty
--               label key (by whole labels: "", "a", "a,b" of "a,b,c"; and
--               the key itself), 2 x (non-empty label keys that p is a
--               proper prefix of) + (1 if p is itself a non-empty key).
-- A worker serves a label key iff every label of the key is one of its own
-- (an exclusive worker, offering '!' first, never serves ""). Both are
-- sorted the same way, so the keys a worker serves are reached from "" by
-- appending, each step, one of its labels after the last one appended, and
-- only through prefixes the index holds: every node visited is a subset of
-- the worker's labels and a prefix of a queued key. 20,000 queued keys
-- "a,zzN" cost a worker offering "a,b" two lookups.
-- A queue turning non-empty or empty updates the index in O(labels in its
-- key); nothing else changes it.

-- What servable() found for a worker's labels, until the trie changes:
-- a batch's claims ask it again for each job.
local SERVABLE = {} -- per call

local function bump(field, by)
  SERVABLE = {}
  if redis.call('HINCRBY', P .. 'lsindex', field, by) <= 0 then redis.call('HDEL', P .. 'lsindex', field) end
end

-- `d`: +1 when the queue of `lk` turns non-empty, -1 when it empties.
local function index_labelset(lk, d)
  local prefix = ''
  for i, label in ipairs(split(lk, ',')) do
    bump(prefix, 2 * d)
    prefix = i == 1 and label or prefix .. ',' .. label
  end
  bump(lk, d)
end

-- Paused labels (`plabels`: label -> when it was paused): a label set
-- needing one leaves the claim index while it is paused, so no claim takes
-- from its queue and a claim's cost stays with what it can serve; `plsets`
-- holds those non-empty label sets until their labels resume.
local function lk_paused(lk)
  if redis.call('EXISTS', P .. 'plabels') == 0 then return false end
  for _, l in ipairs(split(lk, ',')) do
    if redis.call('HEXISTS', P .. 'plabels', l) == 1 then return true end
  end
  return false
end

-- A non-empty label set joins the claim index (`labelsets` and the trie).
local function join_claim_index(lk)
  if redis.call('SADD', P .. 'labelsets', lk) == 1 then index_labelset(lk, 1) end
end

-- `front`: ahead of every job of its priority (one handed back unrun).
local function make_ready(wf, job, lk, pr, front)
  local seq = 0
  if not front then seq = redis.call('INCR', P .. 'seq') end
  local score = (100 - tonumber(pr or 0)) * 4398046511104 + seq -- 2^42
  redis.call('ZADD', P .. 'ready:' .. lk, num(score), wf .. ':' .. job)
  if lk_paused(lk) then
    redis.call('SADD', P .. 'plsets', lk) -- no wake-up: nobody may take it
    return
  end
  join_claim_index(lk)
  redis.call('PUBLISH', P .. 'wake', lk)
end

-- A label key whose queue is empty leaves the index at once.
local function drop_labelset(lk)
  if redis.call('SREM', P .. 'labelsets', lk) == 1 then
    index_labelset(lk, -1)
  else
    redis.call('SREM', P .. 'plsets', lk)
  end
end

-- Takes a job off its ready queue (claimed or cancelled). `last`: whether
-- it was the queue's last job, when the caller knows.
local function unready(lk, member, last)
  redis.call('ZREM', P .. 'ready:' .. lk, member)
  if last == nil then last = redis.call('EXISTS', P .. 'ready:' .. lk) == 0 end
  if last then drop_labelset(lk) end
end

-- The non-empty label keys a claim offering `wk` ("a,b"; "!a,b" for an
-- exclusive worker) may take from: a walk of the trie from "", one HMGET
-- per node that has keys below it and labels of `wk` left to append.
local function servable(wk)
  if SERVABLE[wk] then return SERVABLE[wk] end
  local exclusive = string.sub(wk, 1, 1) == '!'
  local labels = split(exclusive and string.sub(wk, 2) or wk, ',')
  local out = {}
  -- nodes still to expand: {prefix, index in `labels` of its last label}
  local todo = { { '', 0 } }
  local root = true
  while #todo > 0 do
    local node = table.remove(todo)
    local prefix, last = node[1], node[2]
    local fields = {}
    if root then fields[1] = '' end -- the root's own count comes with its children
    for j = last + 1, #labels do
      fields[#fields + 1] = prefix == '' and labels[j] or prefix .. ',' .. labels[j]
    end
    if #fields > 0 then
      local counts = redis.call('HMGET', P .. 'lsindex', unpack(fields))
      for i, count in ipairs(counts) do
        local n = tonumber(count) or 0
        if n > 0 then
          local j = last + i - (root and 1 or 0) -- the label of `wk` this field appended
          if n % 2 == 1 and not (j == 0 and exclusive) then out[#out + 1] = fields[i] end
          if n >= 2 and j > 0 and j < #labels then todo[#todo + 1] = { fields[i], j } end
        end
      end
    end
    root = false
  end
  SERVABLE[wk] = out
  return out
end

-- Data kept by a version that indexed label sets per worker label key
-- (`wkeys`, `serve:<wk>`): the trie is built from `labelsets` once, the old
-- index removed. Returns how many label keys were indexed.
local function reindex_labelsets()
  for _, wk in ipairs(redis.call('ZRANGE', P .. 'wkeys', 0, -1)) do redis.call('DEL', P .. 'serve:' .. wk) end
  redis.call('DEL', P .. 'wkeys', P .. 'lsindex')
  SERVABLE = {}
  local n = 0
  for _, lk in ipairs(redis.call('SMEMBERS', P .. 'labelsets')) do
    if redis.call('EXISTS', P .. 'ready:' .. lk) == 1 then
      index_labelset(lk, 1)
      n = n + 1
    else
      redis.call('SREM', P .. 'labelsets', lk)
    end
  end
  return n
end
