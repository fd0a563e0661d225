--- @include "leases"
--- @include "runs"
--- @include "confine"
-- Starts a new run of a workflow's current definition.
-- ARGV: wf, run id, triggered_by, inputs JSON, tags JSON, retention secs,
--   mode ('new': always a new run | 'seed': refused while the latest run is
--   active, as seed 002's `run` is | 'restart': of the version given below
--   | 'check': see below | 'continue': a continuation of the lease's run,
--   see below), idempotency key, request hash, ttl,
--   and for a child run, the spawning job's lease id and caller (see
--   live_lease; '' for none), and the most child runs per run, levels of
--   them, and runs under one root (ARGV 11-15; for a continuation, ARGV 13
--   is the most runs in a lineage); then the caller's API token
--   id ('' with auth off) and the most live idempotency keys it may hold
--   (16-17).
-- A continuation (Strait's `continue`) is a new run of the lease's own
-- workflow, `cont` (continuation of) the lease's run, one level deeper in
-- its lineage (ldepth); a run continues once: asked again, the answer is
-- the continuation it has.
-- A child run's workflow must be in its spawning job's `spawn: {workflows}`
-- (see _confine.lua). It is `depth` (its parent's + 1) levels below its
-- `root`, the run nobody spawned, which counts the runs under it in `tree`
-- (while it is kept).
-- Then (ARGV 18 on): the definition version the caller checked the inputs against
-- ('' for the current one, whichever it is; with mode 'restart', the
-- version to start, which the restarted run holds), the restarted run's id
-- (mode 'restart'), when it starts: scheduled_at ms or delay ms (''), until
-- when it may start: expires_at ms or expires_in ms (''), how far ahead a
-- start may be scheduled (ms); a JSON object of fields the new run keeps
-- (idemk: the client's own Idempotency-Key, batch: the bulk call that
-- started it; '' for none); and per-run overrides: the overridden
-- version's id ('' for none), the overrides JSON, njobs (ARGV 28), then
-- per job: id, its record (as define's: see def: in _keys.lua).
-- Then, after the last job's (ARGV 28 + 2 x njobs + 1 on): the run's
-- concurrency groups as the caller rendered them for the version it named
-- in ARGV 18 (JSON: {run: group spec, jobs: {job: group spec}}, see
-- _control.lua; '' none), and the most new runs a paused workflow holds.
-- A run scheduled ahead is `delayed` (see due_runs.lua); one with overrides
-- runs a version of its own (the definition with the overrides applied),
-- holding the version they were applied to as well, so it can be
-- restarted from it.
-- A definition with concurrency groups (`cc` in def:) is started only for
-- the version named (its groups rendered for it): without one, the answer
-- is {'changed', version} (render for it and call again). A workflow
-- paused with new runs skipped refuses the run; paused with new runs
-- queued, the run waits for it (wfheld:<wf>). A delayed run meets the
-- pause and its concurrency group when its time comes (release_run).
-- Returns {'ok', run, number} | {'replayed', run} | {'idem_reused', run} |
-- {'active', latest run} | {'not_found'} | {'not_allowed'} | {'limit',
-- name, max} | {'limit', 'idem', max} (the caller holds that many keys
-- already) | {'allowed', version} (mode 'check') | {'changed', current
-- version} | {'run_not_found'} | {'too_far', latest ms} | {'expires_first',
-- now ms} | {'paused'} | {'held_full', max} | a lease's refusal.
local wf, run, by, inputs, tags, ret, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local idem, idem_hash, idem_ttl = ARGV[8], ARGV[9], tonumber(ARGV[10])
local parent_lease = ARGV[11] or ''
local owner, max_idem = ARGV[16] or '', tonumber(ARGV[17])
local spawner = nil  -- the spawning job's lease, for a child run
local continuing = mode == 'continue'
local ldepth = 0
if parent_lease ~= '' then
  local lease, refusal = live_lease(parent_lease, now_ms(), ARGV[12])
  if not lease then return lease_gone(parent_lease, ARGV[12], refusal) end
  if lease.st ~= 'running' then return { lease.st } end
  spawner = lease
  if continuing then
    local prior = redis.call('ZRANGE', P .. 'conts:' .. lease.run, 0, 0)
    if #prior > 0 and redis.call('EXISTS', rkey(prior[1])) == 1 then return { 'replayed', prior[1] } end
    wf = lease.wf
    ldepth = (tonumber(redis.call('HGET', rkey(lease.run), 'ldepth')) or 0) + 1
    if ldepth >= tonumber(ARGV[13]) then return { 'limit', 'MAX_LINEAGE_RUNS', tonumber(ARGV[13]) } end
  else
    if not allowance(lease.run, lease.job).workflows[wf] then return { 'not_allowed' } end
    -- A job retried after it spawned a child run gets that run again, as
    -- re-spawned jobs are a no-op: one child per spawning job and request.
    if idem == '' then idem = 'spawn:' .. lease.run .. ':' .. lease.job .. ':' .. idem_hash end
  end
end
local want_ver, rfrom = ARGV[18] or '', ARGV[19] or ''
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
if mode == 'restart' then
  if redis.call('EXISTS', rkey(rfrom)) == 0 then return { 'run_not_found' } end
  if redis.call('EXISTS', dkey(wf, want_ver)) == 0 then return { 'not_found' } end
  ver = want_ver
elseif want_ver ~= '' and want_ver ~= ver then
  -- replaced since the caller checked the inputs against it
  return { 'changed', ver }
end
if mode == 'seed' and last and redis.call('HGET', rkey(last), 'state') == 'active' then
  return { 'active', last }
end
local depth, root
if spawner and not continuing then
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
-- mode 'check': only whether this spawner may start it (the caller then
-- checks the inputs against the version answered, and starts it)
if mode == 'check' then return { 'allowed', ver } end
if want_ver == '' and redis.call('HGET', dkey(wf, ver), 'cc') == '1' then return { 'changed', ver } end
local cb = 28 + (tonumber(ARGV[28]) or 0) * 2
local control, most_held = ARGV[cb + 1] or '', tonumber(ARGV[cb + 2])
control = control ~= '' and cjson.decode(control) or {}
local now = now_ms()
local function at(abs, rel)
  if (abs or '') ~= '' then return tonumber(abs) end
  if (rel or '') ~= '' then return now + tonumber(rel) end
  return nil
end
local sat, exp, ahead = at(ARGV[20], ARGV[21]), at(ARGV[22], ARGV[23]), tonumber(ARGV[24] or 0)
local keeps = (ARGV[25] or '') ~= '' and cjson.decode(ARGV[25]) or {}
if sat and sat > now + ahead then return { 'too_far', num(now + ahead) } end
if exp and exp <= math.max(now, sat or 0) then return { 'expires_first', num(now) } end
local held = sat ~= nil and sat > now
local refused = admit_new_run(wf, control, most_held, held)
if refused then return refused end
-- A child run's key is the spawner's own (one per spawning job and
-- request), bounded with its run's children, not the caller's keys.
local counted = idem ~= '' and not spawner
if counted and idem_quota_full(owner, idem, now, max_idem) then return { 'limit', 'idem', max_idem } end

local base, derived = nil, ARGV[26] or ''
if derived ~= '' then
  local d2 = dkey(wf, derived)
  if redis.call('EXISTS', d2) == 0 then
    -- the definition with the overrides applied: its jobs' records
    -- replaced, the rest (names, inputs) as the version's
    local row = redis.call('HGETALL', dkey(wf, ver))
    for i = 1, #row, 2 do redis.call('HSET', d2, row[i], row[i + 1]) end
    for i = 0, tonumber(ARGV[28]) - 1 do
      local b = 28 + i * 2
      redis.call('HSET', d2, 'j:' .. ARGV[b + 1], ARGV[b + 2])
    end
    redis.call('HSET', d2, 'refs', 0, 'created', now)
  end
  base, ver = ver, derived
  redis.call('HINCRBY', dkey(wf, base), 'refs', 1)
end
local n = redis.call('HINCRBY', w, 'runs', 1)
local seq = redis.call('INCR', P .. 'runseq')
create_run(run, wf, ver, n, by, inputs, tags, seq, ret, now, held, control)
local r = rkey(run)
if base then redis.call('HSET', r, 'bver', base, 'ovr', ARGV[27]) end
if sat then redis.call('HSET', r, 'sat', num(sat)) end
if held then redis.call('ZADD', P .. 'delayedruns', num(sat), run) end
if exp then
  redis.call('HSET', r, 'exp', num(exp))
  redis.call('ZADD', P .. 'expiring', num(exp), run)
end
if rfrom ~= '' then
  redis.call('HSET', r, 'rfrom', rfrom)
  event(rfrom, '', 'run', 'restarted', 0, now, 'restarted as run ' .. run .. ' (' .. wf .. ' #' .. n .. ')')
end
for field, value in pairs(keeps) do redis.call('HSET', r, field, value) end
-- the key as the run's own (a reset forgets it, and frees its owner's count)
if keeps.idemk then redis.call('HSET', r, 'idem', idem, 'idemo', owner) end
if continuing then
  redis.call('HSET', r, 'cont', spawner.run, 'ldepth', ldepth)
  redis.call('ZADD', P .. 'conts:' .. spawner.run, seq, run)
  event(spawner.run, spawner.job, 'continue', 'running', tonumber(spawner.att) or 0, now,
    'continued as run ' .. run .. ' (' .. wf .. ' #' .. n .. ')')
elseif spawner then
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
if not held then start_new_run(run, wf, control, now) end
return { 'ok', run, n }
