--- @include "runs"
--- @include "defs"
--- @include "schedules"
-- Creates or replaces a workflow definition, and optionally starts a run
-- of it, in one step.
-- ARGV: wf, name, trigger, version, kind (oneoff|put|file), document,
--   idempotency key, request hash, idempotency ttl secs,
--   start (0|1), run id, triggered_by, inputs JSON, tags JSON, retention
--   secs, njobs, the caller (API token id; '' with auth off), the most live
--   one-off workflows and idempotency keys it may hold, schedules JSON
--   ([{cron, tz, cu, ov, spec}], see _schedules.lua), declared inputs JSON,
--   the workflow's env (JSON, when it holds expressions; else ''), run-name,
--   the started run's concurrency groups as rendered (see start.lua; ''
--   none), whether the definition has concurrency groups ('1' | ''), its
--   workflow-level concurrency (JSON, '' none), then per job: id, its
--   record (see def: in _keys.lua).
-- Returns {outcome, wf, run id or ''}: created | updated | unchanged |
-- replayed (same Idempotency-Key and request) | idem_reused (same key,
-- another request: nothing done) | deleting (the workflow is being deleted);
-- or {'limit', 'oneoffs' | 'idem', cap}: the caller holds that many already,
-- nothing done.
local wf, name, trigger, ver, kind, doc = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local idem, idem_hash, idem_ttl = ARGV[7], ARGV[8], tonumber(ARGV[9])
local start, run, by, inputs, tags, ret = ARGV[10] == '1', ARGV[11], ARGV[12], ARGV[13], ARGV[14], ARGV[15]
local njobs = tonumber(ARGV[16])
local caller, max_oneoffs, max_idem = ARGV[17], tonumber(ARGV[18]), tonumber(ARGV[19])
local schedules, declared = ARGV[20], ARGV[21]
local wenv, rname = ARGV[22], ARGV[23]
local control, cc, wcc = ARGV[24], ARGV[25], ARGV[26]
local now = now_ms()

if idem ~= '' then
  local prior = redis.call('GET', P .. 'idem:' .. idem)
  local pwf, prun, phash = string.match(prior or '', '^([^|]*)|([^|]*)|([^|]*)$')
  if pwf and redis.call('EXISTS', wkey(pwf)) == 1 then
    if phash ~= idem_hash then return { 'idem_reused', pwf, prun } end
    return { 'replayed', pwf, prun }
  end
end

local w = wkey(wf)
local cur, deleting = unpack(redis.call('HMGET', w, 'ver', 'deleting'))
if deleting == '1' then return { 'deleting', wf, '' } end
local outcome = 'created'
if cur then
  outcome = cur == ver and 'unchanged' or 'updated'
end
-- A key is kept only for a request that created or changed something: a
-- retry of one that changed nothing changes nothing either way.
local keep_key = idem ~= '' and (outcome ~= 'unchanged' or start)
local new_oneoff = kind == 'oneoff' and outcome == 'created'
if new_oneoff and quota_full('oneoffs', caller, max_oneoffs) then return { 'limit', 'oneoffs', max_oneoffs } end
if keep_key and idem_quota_full(caller, idem, now, max_idem) then return { 'limit', 'idem', max_idem } end

-- A PUT over a one-off's id makes it a named definition: no longer found by its name.
if cur and kind ~= 'oneoff' then unname_oneoff(wf) end

local d = dkey(wf, ver)
if redis.call('EXISTS', d) == 0 then
  local ids, fields = {}, {}
  for i = 0, njobs - 1 do
    local b = 26 + i * 2
    ids[#ids + 1] = ARGV[b + 1]
    fields[#fields + 1] = 'j:' .. ARGV[b + 1]
    fields[#fields + 1] = ARGV[b + 2]
  end
  -- run control's fields only where it has groups
  if cc ~= '' then fields[#fields + 1] = 'cc'; fields[#fields + 1] = cc end
  if wcc ~= '' then fields[#fields + 1] = 'wcc'; fields[#fields + 1] = wcc end
  redis.call('HSET', d, 'name', name, 'trigger', trigger, 'jobs', table.concat(ids, ','), 'refs', 0,
    'created', now, 'inputs', declared, 'wenv', wenv, 'rname', rname, unpack(fields))
  redis.call('SET', P .. 'doc:' .. wf .. ':' .. ver, doc)
end
if outcome ~= 'unchanged' then
  redis.call('HINCRBY', d, 'refs', 1)
  if cur then
    release_def(wf, cur)
  else
    redis.call('HSET', w, 'id', wf, 'created', now, 'kind', kind, 'runs', 0, 'active', 0)
    local seq = redis.call('INCR', P .. 'wfseq')
    redis.call('ZADD', P .. 'wfs', seq, wf)
    if new_oneoff then
      -- a one-off never started goes RETENTION_SECS after creation
      redis.call('ZADD', P .. 'oneoffs', num(now + tonumber(ret) * 1000), wf)
      redis.call('ZADD', P .. 'named:' .. name, seq, wf)
      redis.call('SADD', quota_key('oneoffs', caller), wf)
      redis.call('HSET', w, 'otok', caller)
    end
  end
  redis.call('HSET', w, 'name', name, 'trigger', trigger, 'ver', ver, 'updated', now)
end
if kind ~= 'oneoff' then
  -- defined by a file or PUT: kept whatever its runs' retention
  redis.call('HSET', w, 'kind', kind)
  redis.call('ZREM', P .. 'oneoffs', wf)
  untrack_oneoff(wf)
  -- (a one-off has no schedules: the server refuses one with `on: schedule`)
  if outcome ~= 'unchanged' then sync_schedules(wf, cjson.decode(schedules), now) end
end

if start then
  local n = redis.call('HINCRBY', w, 'runs', 1)
  -- a new workflow (a one-off's create): nothing has paused it yet
  control = control ~= '' and cjson.decode(control) or {}
  if control.run then control.wait = 'group' end
  create_run(run, wf, ver, n, by, inputs, tags, redis.call('INCR', P .. 'runseq'), ret, now, false, control)
  start_new_run(run, wf, control, now)
else
  run = ''
end
if keep_key then keep_idem(caller, idem, wf .. '|' .. run .. '|' .. idem_hash, idem_ttl, now) end
return { outcome, wf, run }
