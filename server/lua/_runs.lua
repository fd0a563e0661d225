--- @include "control"
-- Jobs and runs coming into being: a job's record from its definition,
-- a run of a definition version (define, start, a schedule's tick; a
-- spawn's jobs), and a delayed run's release.

-- A job record, from its static description `m` (lk pr mr bk b1 b2 gate
-- gsecs fl, tab-separated; a definition stored before the workflow
-- language has no fl) and its needs and dependents. Returns its flags.
local function init_job(run, job, m, needs, deps, rem)
  local f = {}
  for field in string.gmatch(m .. '\t', '([^\t]*)\t') do f[#f + 1] = field end
  -- only what differs from JOB_DEFAULTS: a queued job is a small hash
  jnew(jkey(run, job), 'st', 'created', 'rem', rem, 'lk', f[1] or '', 'pr', f[2] or 0, 'mr', f[3] or 0,
    'bk', f[4] or 'none', 'b1', f[5] or 0, 'b2', f[6] or 0, 'gate', f[7] or '', 'gsecs', f[8] or '',
    'fl', f[9] or '', 'needs', needs or '', 'deps', deps or '')
  return f[9] or ''
end

-- Starts a run of a workflow's definition version: a job record per job,
-- the roots enqueued (or decided). `inputs`, `tags`: JSON objects. `held`:
-- a delayed run (its scheduled time not yet come): every job waits, and the
-- run is `delayed` until release_run. `control` (see _control.lua): the
-- run's concurrency group (`run`, a group spec), its jobs' (`jobs`: job ->
-- group spec), the `key` it was started with, and `wait`, why the run may
-- not start its jobs yet ('workflow' | 'group'), holding its roots until it
-- may.
local function create_run(run, wf, ver, num_, by, inputs, tags, seq, ret, now, held, control)
  control = control or {}
  local d = dkey(wf, ver)
  local jobs, name = unpack(redis.call('HMGET', d, 'jobs', 'name'))
  local r = rkey(run)
  redis.call('HSET', r, 'id', run, 'wf', wf, 'ver', ver, 'num', num_, 'by', by, 'seq', seq,
    'created', now, 'state', held and 'delayed' or 'active', 'cancelled', 0, 'started', 0, 'ret', ret,
    'inputs', inputs, 'tags', tags, 'jobs', jobs, 'name', name or wf, 'ratt', 1)
  if control.run then redis.call('HSET', r, 'cg', control.run) end
  if control.wait then redis.call('HSET', r, 'wait', control.wait) end
  if control.key then redis.call('HSET', r, 'ckey', control.key) end
  local grouped = control.jobs or {}
  for job, spec in pairs(grouped) do redis.call('HSET', r, 'jg:' .. job, spec) end
  redis.call('HINCRBY', d, 'refs', 1)
  redis.call('ZADD', P .. 'runs', seq, run)
  redis.call('ZADD', P .. 'wfruns:' .. wf, seq, run)
  redis.call('HSET', wkey(wf), 'last', run)
  redis.call('HINCRBY', wkey(wf), 'active', 1)
  redis.call('ZREM', P .. 'oneoffs', wf)
  event(run, '', 'run', held and 'delayed' or 'queued', 0, now, 'run ' .. num_ .. ' of ' .. wf .. ' (' .. by .. ')')
  for _, job in ipairs(split(jobs, ',')) do
    local m, needs, deps = def_job(d, job)
    local nn = #split(needs, ',')
    local fl = init_job(run, job, m, needs, deps, nn)
    if grouped[job] then redis.call('HSET', jkey(run, job), 'cg', 'o') end
    if nn > 0 or held then
      set_status(run, job, nil, 'waiting')
    elseif has(fl, 'd') then
      begin_deciding(run, job, nil, now)
    else
      enqueue(run, job, nil, now, 0)
    end
  end
  if not held then maybe_finish(run, now) end
end

-- A delayed run whose time has come starts as a run started now does: it
-- meets its workflow's pause and its concurrency group (run_begins: a
-- workflow refusing new runs cancels it; `most`: the most new runs a
-- paused workflow holds), then its roots are enqueued (or decided), held
-- while it waits.
local function release_run(run, now, why, most)
  local r = rkey(run)
  redis.call('HSET', r, 'state', 'active', 'released', now)
  event(run, '', 'run', 'queued', 0, now, why)
  local wf, n = unpack(redis.call('HMGET', r, 'wf', 'num'))
  note(string.format('run %s (%s #%s): %s', run, wf, n or '?', why))
  if not run_begins(run, now, most) then return end
  for _, job in ipairs(split(redis.call('HGET', r, 'jobs'), ',')) do
    local st, rem, fl = unpack(jmget(jkey(run, job), 'st', 'rem', 'fl'))
    if st == 'waiting' and (tonumber(rem) or 0) <= 0 then
      if has(fl, 'd') then begin_deciding(run, job, 'waiting', now) else enqueue(run, job, 'waiting', now, 0) end
    end
  end
  maybe_finish(run, now)
end
