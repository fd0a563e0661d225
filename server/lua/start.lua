--- @include "jobs"
-- Starts a new run of a workflow's current definition.
-- ARGV: wf, run id, triggered_by, inputs JSON, tags JSON, retention secs,
--   mode ('new': always a new run | 'seed': refused while the latest run is
--   active, as seed 002's `run` is), idempotency key, request hash, ttl.
-- Returns {'ok', run, number} | {'replayed', run} | {'idem_reused', run} |
-- {'active', latest run} | {'not_found'}.
local wf, run, by, inputs, tags, ret, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local idem, idem_hash, idem_ttl = ARGV[8], ARGV[9], tonumber(ARGV[10])
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
create_run(run, wf, ver, n, by, inputs, tags, redis.call('INCR', P .. 'runseq'), ret, now)
if idem ~= '' then
  redis.call('SET', P .. 'idem:' .. idem, run .. '|' .. idem_hash, 'EX', idem_ttl)
end
return { 'ok', run, n }
