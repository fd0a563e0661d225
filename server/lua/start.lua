--- @include "leases"
-- Starts a new run of a workflow's current definition.
-- ARGV: wf, run id, triggered_by, inputs JSON, tags JSON, retention secs,
--   mode ('new': always a new run | 'seed': refused while the latest run is
--   active, as seed 002's `run` is), idempotency key, request hash, ttl,
--   and for a child run, the spawning job's lease id and caller (see
--   live_lease; '' for none).
-- Returns {'ok', run, number} | {'replayed', run} | {'idem_reused', run} |
-- {'active', latest run} | {'not_found'} | a lease's refusal.
local wf, run, by, inputs, tags, ret, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local idem, idem_hash, idem_ttl = ARGV[8], ARGV[9], tonumber(ARGV[10])
local parent_lease = ARGV[11] or ''
local spawner = nil  -- the spawning job's lease, for a child run
if parent_lease ~= '' then
  local lease, refusal = live_lease(parent_lease, now_ms(), ARGV[12])
  if not lease then return lease_gone(parent_lease, ARGV[12], refusal) end
  if lease.st ~= 'running' then return { lease.st } end
  spawner = lease
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
local now = now_ms()
local n = redis.call('HINCRBY', w, 'runs', 1)
local seq = redis.call('INCR', P .. 'runseq')
create_run(run, wf, ver, n, by, inputs, tags, seq, ret, now)
if spawner then
  redis.call('HSET', rkey(run), 'parent', spawner.run)
  redis.call('ZADD', P .. 'children:' .. spawner.run, seq, run)
  event(spawner.run, spawner.job, 'spawn', 'running', tonumber(spawner.att) or 0, now,
    'child run ' .. run .. ' (' .. wf .. ' #' .. n .. ')')
end
if idem ~= '' then
  redis.call('SET', P .. 'idem:' .. idem, run .. '|' .. idem_hash, 'EX', idem_ttl)
end
return { 'ok', run, n }
