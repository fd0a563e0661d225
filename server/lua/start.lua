--- @include "leases"
--- @include "confine"
-- Starts a new run of a workflow's current definition.
-- ARGV: wf, run id, triggered_by, inputs JSON, tags JSON, retention secs,
--   mode ('new': always a new run | 'seed': refused while the latest run is
--   active, as seed 002's `run` is), idempotency key, request hash, ttl,
--   and for a child run, the spawning job's lease id and caller (see
--   live_lease; '' for none), and the most child runs per run, levels of
--   them, and runs under one root; then the caller's API token id ('' with
--   auth off) and the most live idempotency keys it may hold.
-- A child run's workflow must be in its spawning job's `spawn: {workflows}`
-- (see _confine.lua). It is `depth` (its parent's + 1) levels below its
-- `root`, the run nobody spawned, which counts the runs under it in `tree`
-- (while it is kept).
-- Returns {'ok', run, number} | {'replayed', run} | {'idem_reused', run} |
-- {'active', latest run} | {'not_found'} | {'not_allowed'} | {'limit',
-- name, max} | {'limit', 'idem', max} (the caller holds that many keys
-- already) | a lease's refusal.
local wf, run, by, inputs, tags, ret, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local idem, idem_hash, idem_ttl = ARGV[8], ARGV[9], tonumber(ARGV[10])
local parent_lease = ARGV[11] or ''
local owner, max_idem = ARGV[16] or '', tonumber(ARGV[17])
local spawner = nil  -- the spawning job's lease, for a child run
if parent_lease ~= '' then
  local lease, refusal = live_lease(parent_lease, now_ms(), ARGV[12])
  if not lease then return lease_gone(parent_lease, ARGV[12], refusal) end
  if lease.st ~= 'running' then return { lease.st } end
  spawner = lease
  if not allowance(lease.run, lease.job).workflows[wf] then return { 'not_allowed' } end
  -- A job retried after it spawned a child run gets that run again, as
  -- re-spawned jobs are a no-op: one child per spawning job and request.
  if idem == '' then idem = 'spawn:' .. lease.run .. ':' .. lease.job .. ':' .. idem_hash end
end
local w = wkey(wf)
local ver, last, deleting = unpack(redis.call('HMGET', w, 'ver', 'last', 'deleting'))
if not ver or deleting == '1' then return { 'not_found' } end
if idem ~= '' then
  local prior = redis.call('GET', P .. 'idem:' .. idem)
  local prun, phash = string.match(prior or '', '^([^|]*)|([^|]*)$')
  if prun and redis.call('EXISTS', rkey(prun)) == 1 then
    if phash ~= idem_hash then return { 'idem_reused', prun } end
    return { 'replayed', prun }
  end
end
if mode == 'seed' and last and redis.call('HGET', rkey(last), 'state') == 'active' then
  return { 'active', last }
end
local depth, root
if spawner then
  local max_children, max_depth, max_tree = tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15])
  local pdepth, proot = unpack(redis.call('HMGET', rkey(spawner.run), 'depth', 'root'))
  depth = (tonumber(pdepth) or 0) + 1
  root = (proot and proot ~= '') and proot or spawner.run
  if depth > max_depth then return { 'limit', 'MAX_RUN_DEPTH', max_depth } end
  if redis.call('ZCARD', P .. 'children:' .. spawner.run) >= max_children then
    return { 'limit', 'MAX_CHILD_RUNS', max_children }
  end
  if (tonumber(redis.call('HGET', rkey(root), 'tree')) or 0) >= max_tree then
    return { 'limit', 'MAX_RUN_TREE', max_tree }
  end
end
local now = now_ms()
-- A child run's key is the spawner's own (one per spawning job and
-- request), bounded with its run's children, not the caller's keys.
local counted = idem ~= '' and not spawner
if counted and idem_quota_full(owner, idem, now, max_idem) then return { 'limit', 'idem', max_idem } end
local n = redis.call('HINCRBY', w, 'runs', 1)
local seq = redis.call('INCR', P .. 'runseq')
create_run(run, wf, ver, n, by, inputs, tags, seq, ret, now)
if spawner then
  redis.call('HSET', rkey(run), 'parent', spawner.run, 'depth', depth, 'root', root)
  -- a purged root counts no more (nor comes back as a stray hash)
  if redis.call('EXISTS', rkey(root)) == 1 then redis.call('HINCRBY', rkey(root), 'tree', 1) end
  redis.call('ZADD', P .. 'children:' .. spawner.run, seq, run)
  event(spawner.run, spawner.job, 'spawn', 'running', tonumber(spawner.att) or 0, now,
    'child run ' .. run .. ' (' .. wf .. ' #' .. n .. ')')
end
if counted then
  keep_idem(owner, idem, run .. '|' .. idem_hash, idem_ttl, now)
elseif idem ~= '' then
  redis.call('SET', P .. 'idem:' .. idem, run .. '|' .. idem_hash, 'EX', idem_ttl)
end
return { 'ok', run, n }
