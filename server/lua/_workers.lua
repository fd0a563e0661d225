--- @include "quota"
-- The workers: when each was seen last, which API token owns its id, and
-- forgetting one. Apart from the leases (_leases.lua), so a claim carries
-- only these.

-- A worker touched once per call: a batch's claims and results each touch
-- it, at the same time.
local TOUCHED = {} -- per call
local function touch_worker(worker, now)
  if TOUCHED[worker] == now then return end
  TOUCHED[worker] = now
  redis.call('HSET', P .. 'worker:' .. worker, 'last_seen', now)
  redis.call('ZADD', P .. 'workers', now, worker)
end

-- A worker id belongs to the API token that first registered or claimed
-- under it, so one fleet cannot impersonate another's workers. `caller`
-- is that token's id, or '' with auth off (no owner is kept then). An
-- owner whose token was revoked gives the id up. Each token holds at most
-- `cap` worker ids (quota:workers:<tok>); `fresh`: no worker has this id
-- yet. Returns 'ok', or, having changed nothing, 'taken' (another token
-- owns the id) or 'limit' (the caller holds `cap` ids already).
local function own_worker(worker, caller, cap, fresh)
  if caller == '' then
    if not fresh then return 'ok' end
    if quota_full('workers', '', cap) then return 'limit' end
    redis.call('SADD', quota_key('workers', ''), worker)
    return 'ok'
  end
  local wk = P .. 'worker:' .. worker
  local owner = redis.call('HGET', wk, 'owner')
  if owner and owner ~= '' and owner ~= caller
      and (owner == 'admin' or redis.call('EXISTS', P .. 'token:' .. owner) == 1) then
    return 'taken'
  end
  if owner ~= caller then
    if quota_full('workers', caller, cap) then return 'limit' end
    if not fresh then redis.call('SREM', quota_key('workers', owner or ''), worker) end
    redis.call('SADD', quota_key('workers', caller), worker)
    redis.call('HSET', wk, 'owner', caller)
  end
  return 'ok'
end

-- Forgets a worker (the reaper, long after it was last seen): its record,
-- and its place in its token's count.
local function forget_worker(worker)
  TOUCHED[worker] = nil
  local wk = P .. 'worker:' .. worker
  redis.call('SREM', quota_key('workers', redis.call('HGET', wk, 'owner') or ''), worker)
  redis.call('DEL', wk, P .. 'wleases:' .. worker)
  redis.call('ZREM', P .. 'workers', worker)
end
