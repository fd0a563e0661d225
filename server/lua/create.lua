--- @include "lib"
-- Defines a workflow (and optionally starts it) in one step.
-- ARGV: id, name, trigger, idempotency_key, request_hash, idempotency_ttl_secs,
--       run (0|1), retention_secs, defhash, mode (new|upsert), njobs, then per
--       job: id, spec, lk, pr, mr, bk, b1, b2, needs, deps, nn
-- Returns {outcome, workflow_id}: created | replayed (same Idempotency-Key,
-- same request) | idem_reused (same key, another request: nothing done) |
-- unchanged | updated | active (upsert refused while the workflow runs).
local wf, name, trigger, idem, req_hash = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local idem_ttl, run, ret, defhash = tonumber(ARGV[6]), ARGV[7] == '1', ARGV[8], ARGV[9]
local mode, njobs = ARGV[10], tonumber(ARGV[11])
local now = now_ms()

if idem ~= '' then
  local prior = redis.call('GET', P .. 'idem:' .. idem)
  local prior_wf, prior_hash = string.match(prior or '', '^(.*)|([^|]*)$')
  if prior_wf and redis.call('EXISTS', wkey(prior_wf)) == 1 then
    if prior_hash ~= req_hash then return { 'idem_reused', prior_wf } end
    return { 'replayed', prior_wf }
  end
end

local w = wkey(wf)
local outcome = 'created'
local state = redis.call('HGET', w, 'state')
if state then
  if mode ~= 'upsert' then return { 'replayed', wf } end
  if redis.call('HGET', w, 'defhash') == defhash then return { 'unchanged', wf } end
  if state == 'active' then return { 'active', wf } end
  for _, job in ipairs(split(redis.call('HGET', w, 'jobs'), ',')) do
    redis.call('DEL', jkey(wf, job), logkey(wf, job))
  end
  redis.call('DEL', w)
  redis.call('ZREM', P .. 'finished', wf)
  outcome = 'updated'
end

local ids = {}
for i = 0, njobs - 1 do
  local b = 11 + i * 11
  local id = ARGV[b + 1]
  ids[#ids + 1] = id
  redis.call('HSET', jkey(wf, id), 'spec', ARGV[b + 2], 'lk', ARGV[b + 3], 'pr', ARGV[b + 4],
    'mr', ARGV[b + 5], 'bk', ARGV[b + 6], 'b1', ARGV[b + 7], 'b2', ARGV[b + 8],
    'needs', ARGV[b + 9], 'deps', ARGV[b + 10], 'nn', ARGV[b + 11],
    'st', 'created', 'att', 0, 'rem', ARGV[b + 11], 'lease', '', 'worker', '',
    'enq', 0, 'dly', 0, 'start', '', 'end', '', 'out', '', 'err', '')
end
redis.call('HSET', w, 'id', wf, 'name', name, 'trigger', trigger, 'jobs', table.concat(ids, ','),
  'created', now, 'state', 'idle', 'runs', 0, 'cancelled', 0, 'started', 0, 'ret', ret,
  'defhash', defhash, 'n:created', njobs)
-- Newest first in listings: score by a creation sequence, not the clock,
-- so two workflows created in the same millisecond keep their order.
redis.call('ZADD', P .. 'wfs', redis.call('INCR', P .. 'wfseq'), wf)
if idem ~= '' then
  redis.call('SET', P .. 'idem:' .. idem, wf .. '|' .. req_hash, 'EX', idem_ttl)
end
if run then
  start_run(wf, now)
end
return { outcome, wf }
