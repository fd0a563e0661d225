--- @include "jobs"
-- Run control: concurrency groups, and runs held back (paused, or waiting
-- for their paused workflow or their group). Every script that includes
-- _jobs.lua includes this file after it: it fills in _states.lua's hooks.
--
-- Concurrency groups. A group is a name its members join; its key is the
-- name lowercased (GitHub's groups ignore case):
--   cgh:<key>   zset: the members holding a place, by when they got it
--   cgp:<key>   zset: the members waiting for one, by the sequence cgseq
--               (first in, first out)
--   cgroups     zset: the groups with a member, by when one last entered
--   cgr:<key>   zset: a rate-limited group's admissions in its window, by
--               when (expiring a window after the last)
--   cgdue       zset: rate-limited groups with members waiting, by when
--               their window has room again (the reaper lets them in)
-- A member is a run id (a workflow-level group) or <run>:<job> (a job's).
-- Each carries its own spec, "key \t limit \t queue \t cancel \t window
-- \t name" (queue 's' single | 'm' max; cancel '1' cancel-in-progress;
-- window: ms, 0 for none), in its run's hash: `cg` for the run's group,
-- `jg:<job>` for a job's. A member is let in while fewer than its own limit
-- hold places, or with a window, while fewer than its limit were let in
-- within it; the others wait in order. A job's `cg` says where it stands:
-- 'o' outside, 'p' pending, 'h' holding.
-- A run holds its place until it finishes, a job until it ends (its
-- retries and waits included).
--
-- A run's `wait` is why its jobs may not start yet: 'workflow' (its
-- workflow was paused, new runs queued, when it started: wfheld:<wf> lists
-- those in order) or 'group' (pending in its group); its `paused` is '1'
-- while an operator pauses it. Either holds its jobs that could go to a
-- worker (`held`, hold 'run') until both are clear.

-- GitHub's bound for `queue: max`: past it a new member is cancelled
-- (server/limits.py says the same; a test holds them together).
local MAX_GROUP_PENDING = 100

-- A group spec, or nil.
local function parse_group(spec)
  if not spec or spec == '' then return nil end
  local key, limit, queue, cancel, window, name = string.match(spec,
    '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$')
  if not key or key == '' then return nil end
  return { key = key, limit = tonumber(limit) or 1, queue = queue, cancel = cancel == '1',
           window = tonumber(window) or 0, name = name }
end

-- A member's spec: nil once its run is gone.
local function member_group(m)
  local run, job = parse_member(m)
  if run then return parse_group(redis.call('HGET', rkey(run), 'jg:' .. job)) end
  return parse_group(redis.call('HGET', rkey(m), 'cg'))
end

local function describe(m)
  local run, job = parse_member(m)
  if run then return 'job ' .. job .. ' of run ' .. run end
  return 'run ' .. m
end

-- A run's jobs held for the run go on, once nothing holds the run.
local function release_run_holds(run, now)
  if run_held(run) then return end
  for _, job in ipairs(split(redis.call('HGET', rkey(run), 'jobs'), ',')) do
    local st, hold, lk, pr, cg = unpack(jmget(jkey(run, job), 'st', 'hold', 'lk', 'pr', 'cg'))
    if st == 'held' and hold == 'run' then to_ready(run, job, 'held', now, lk, pr, cg or '') end
  end
end

-- A member got its place.
local function admit(m, g, now)
  local run, job = parse_member(m)
  if not run then
    redis.call('HDEL', rkey(m), 'wait')
    event(m, '', 'group', 'admitted', 0, now, 'concurrency group ' .. g.name)
    release_run_holds(m, now)
    return
  end
  local k = jkey(run, job)
  redis.call('HSET', k, 'cg', 'h')
  local st, hold, att, lk, pr = unpack(jmget(k, 'st', 'hold', 'att', 'lk', 'pr'))
  event(run, job, 'group', 'admitted', tonumber(att) or 0, now, 'concurrency group ' .. g.name)
  if st == 'held' and hold == 'group' then to_ready(run, job, 'held', now, lk, pr, 'h') end
end

-- Groups whose waiting members stay waiting while several members leave
-- at once (a new member cancelling others): it is let in after them.
local SUPPRESSED = {} -- per call

-- Whether a rate-limited group lets one more in now (fewer than `g.limit`
-- in the last `g.window` ms); if not, the reaper looks again when the
-- oldest admission leaves the window.
local function rate_room(key, g, now)
  local rk = P .. 'cgr:' .. key
  redis.call('ZREMRANGEBYSCORE', rk, '-inf', num(now - g.window))
  if redis.call('ZCARD', rk) < g.limit then return true end
  local oldest = redis.call('ZRANGE', rk, 0, 0, 'WITHSCORES')
  redis.call('ZADD', P .. 'cgdue', num(tonumber(oldest[2]) + g.window), key)
  return false
end

-- Lets the waiting members in, in order, while there is room for the first.
local function promote_group(key, now)
  if SUPPRESSED[key] then return end
  local hk, pk = P .. 'cgh:' .. key, P .. 'cgp:' .. key
  while true do
    local head = redis.call('ZRANGE', pk, 0, 0)
    if #head == 0 then break end
    local g = member_group(head[1])
    if not g then
      redis.call('ZREM', pk, head[1])
    elseif g.window > 0 and not rate_room(key, g, now) then
      break
    elseif g.window == 0 and redis.call('ZCARD', hk) >= g.limit then
      break
    else
      redis.call('ZREM', pk, head[1])
      redis.call('ZADD', hk, num(now), head[1])
      if g.window > 0 then
        local rk = P .. 'cgr:' .. key
        redis.call('ZADD', rk, num(now), redis.call('INCR', P .. 'cgseq'))
        redis.call('PEXPIRE', rk, g.window)
      end
      admit(head[1], g, now)
    end
  end
  if redis.call('EXISTS', hk, pk) == 0 then redis.call('ZREM', P .. 'cgroups', key) end
end

-- The reaper's share: rate-limited groups whose window has room again.
local function promote_due_groups(now, limit)
  local due = redis.call('ZRANGEBYSCORE', P .. 'cgdue', '-inf', num(now), 'LIMIT', 0, limit)
  for _, key in ipairs(due) do
    redis.call('ZREM', P .. 'cgdue', key)
    promote_group(key, now)
  end
  return #due
end

local function leave_group(key, m, now)
  local held = redis.call('ZREM', P .. 'cgh:' .. key, m) == 1
  redis.call('ZREM', P .. 'cgp:' .. key, m)
  if held then
    promote_group(key, now)
  elseif redis.call('EXISTS', P .. 'cgh:' .. key, P .. 'cgp:' .. key) == 0 then
    redis.call('ZREM', P .. 'cgroups', key)
  end
end

-- A member another one pushes out: a waiting one replaced, or a running
-- one cancelled in progress.
local function cancel_member(key, m, now, why)
  local run, job = parse_member(m)
  note(string.format('%s cancelled: %s', describe(m), why))
  if not run then
    local st = redis.call('HGET', rkey(m), 'state')
    if st == 'active' then
      event(m, '', 'group', 'cancelled', 0, now, why)
      cancel_whole_run(m, now, why)
    end
    if st ~= 'active' then leave_group(key, m, now) end -- a member whose run is gone
    return
  end
  if cancel_one(run, job, now, why) then
    cascade(run, job, now)
    maybe_finish(run, now)
  else
    leave_group(key, m, now)
  end
end

-- `m` asks for a place in its group `g`. First, as GitHub does, the member
-- waiting (queue: single) is replaced, and with cancel-in-progress the
-- members holding places are cancelled; then `m` waits behind those still
-- waiting, or gets a place at once. `alive()`: whether `m` itself still
-- stands after those cancels. Returns 'admitted' | 'pending' | 'full' (the
-- queue already holds MAX_GROUP_PENDING: its caller cancels it) | 'gone'.
local function enter_group(m, g, now, alive)
  local hk, pk = P .. 'cgh:' .. g.key, P .. 'cgp:' .. g.key
  local who = describe(m)
  SUPPRESSED[g.key] = true
  if g.queue ~= 'm' then
    for _, other in ipairs(redis.call('ZRANGE', pk, 0, -1)) do
      cancel_member(g.key, other, now, 'replaced by ' .. who .. ' in concurrency group ' .. g.name)
    end
  end
  if g.cancel then
    for _, other in ipairs(redis.call('ZRANGE', hk, 0, -1)) do
      cancel_member(g.key, other, now, 'cancelled by ' .. who .. ' (concurrency group ' .. g.name
        .. ', cancel-in-progress)')
    end
  end
  SUPPRESSED[g.key] = nil
  if not alive() then
    promote_group(g.key, now)
    return 'gone'
  end
  if redis.call('ZCARD', pk) >= MAX_GROUP_PENDING then
    promote_group(g.key, now)
    return 'full'
  end
  redis.call('ZADD', pk, redis.call('INCR', P .. 'cgseq'), m)
  redis.call('ZADD', P .. 'cgroups', num(now), g.key)
  promote_group(g.key, now)
  if redis.call('ZSCORE', hk, m) then return 'admitted' end
  return 'pending'
end

local function full_reason(g)
  return string.format('concurrency group %s has %d waiting already (queue: max)', g.name, MAX_GROUP_PENDING)
end

-- A job that could go to a worker takes its place in its group, or waits
-- for one (held), or is turned away (cancelled). Returns whether it may go on.
function job_enters_group(run, job, old, now)
  local k = jkey(run, job)
  local m = member(run, job)
  local g = member_group(m)
  if not g then
    jset(k, 'cg', '')
    return true
  end
  local outcome = enter_group(m, g, now, function()
    return (jget(k, 'st') or '') == (old or 'created')
  end)
  if outcome == 'admitted' then return true end
  local att = tonumber(jget(k, 'att')) or 0
  if outcome == 'pending' then
    redis.call('HSET', k, 'cg', 'p')
    hold_job(run, job, old, 'group')
    event(run, job, 'group', 'waiting', att, now, 'waiting for concurrency group ' .. g.name)
  elseif outcome == 'full' then
    local why = full_reason(g)
    set_status(run, job, old, 'cancelled')
    redis.call('HSET', k, 'end', now)
    event(run, job, 'job', 'cancelled', att, now, why)
    note(string.format('job %s/%s cancelled: %s', run, job, why))
    redis.call('PUBLISH', jobchan(run, job), 'changed')
    cascade(run, job, now)
  end
  return false
end

-- A job that ended gives its place up, or its turn.
function job_leaves_group(run, job)
  local k = jkey(run, job)
  local cg = jget(k, 'cg')
  if cg ~= 'p' and cg ~= 'h' then return end
  redis.call('HSET', k, 'cg', 'o')
  local m = member(run, job)
  local g = member_group(m)
  if g then leave_group(g.key, m, now_ms()) end
end

-- A run that finished lets go of whatever held it: its group place or
-- turn, its place among its paused workflow's runs, its pause.
function run_settles(run, wf, spec, wait, now)
  if wait == 'workflow' then redis.call('ZREM', P .. 'wfheld:' .. wf, run) end
  redis.call('HDEL', rkey(run), 'wait', 'paused', 'paused_ms')
  local g = parse_group(spec)
  if g then leave_group(g.key, run, now) end
end

-- A run with a workflow-level group asks for its place (when it starts, or
-- when its paused workflow resumes, or when it is retried).
local function run_enters_group(run, now)
  local r = rkey(run)
  local g = parse_group(redis.call('HGET', r, 'cg'))
  if not g then
    redis.call('HDEL', r, 'wait')
    release_run_holds(run, now)
    return
  end
  redis.call('HSET', r, 'wait', 'group')
  local outcome = enter_group(run, g, now, function()
    local state, cancelled = unpack(redis.call('HMGET', r, 'state', 'cancelled'))
    return state == 'active' and cancelled ~= '1'
  end)
  if outcome == 'pending' then
    event(run, '', 'group', 'waiting', 0, now, 'waiting for concurrency group ' .. g.name)
  elseif outcome == 'full' then
    local why = full_reason(g)
    event(run, '', 'group', 'cancelled', 0, now, why)
    note(string.format('run %s cancelled: %s', run, why))
    cancel_whole_run(run, now, why)
  end
end

-- How a new run of `wf` (a start, a schedule's tick) meets the workflow's
-- pause, before it is created: a refusal ({'paused'} with new runs
-- skipped; {'held_full', most} with `most` runs waiting already), or nil
-- having set `control.wait` (see create_run) to what the run waits for.
-- A `delayed` run is only refused now; it meets the rest when its time
-- comes.
local function admit_new_run(wf, control, most, delayed)
  local paused = redis.call('HGET', wkey(wf), 'paused')
  if paused == 'skip' then return { 'paused' } end
  if delayed then return nil end
  if paused == 'queue' then
    if redis.call('ZCARD', P .. 'wfheld:' .. wf) >= most then return { 'held_full', most } end
    control.wait = 'workflow'
  elseif control.run then
    control.wait = 'group'
  end
  return nil
end

-- A new run, once created (see create_run), waits for its workflow, in
-- the order runs came to wait (cgseq: a delayed run released now goes
-- behind those waiting already), or asks for its concurrency group's place.
local function start_new_run(run, wf, control, now)
  if control.wait == 'workflow' then
    redis.call('ZADD', P .. 'wfheld:' .. wf, redis.call('INCR', P .. 'cgseq'), run)
    event(run, '', 'pause', 'held', 0, now, 'workflow ' .. wf .. ' is paused: the run starts when it resumes')
  elseif control.wait == 'group' then
    run_enters_group(run, now)
  end
end

-- Pauses and resumes also go to one stream (`ctl`), the operators' record
-- of who held what back.
local function control_event(kind, target, action, by, now, detail)
  redis.call('XADD', P .. 'ctl', 'MAXLEN', '~', '1000', '*', 'e', cjson.encode({
    kind = kind, target = target, action = action, by = by or '', at_ms = now, detail = detail or '' }))
end

-- Why a paused workflow turns a new run away (admit_new_run's refusal).
local function refusal_reason(wf, refused)
  if refused[1] == 'paused' then return 'workflow ' .. wf .. ' is paused and refuses new runs (new_runs: skip)' end
  return string.format('workflow %s is paused and %d new runs wait for it already', wf, refused[2])
end

-- A delayed run whose time has come (release_run) meets what a run started
-- now meets: its workflow's pause, then its concurrency group. Turned away
-- by its workflow, it is cancelled, saying why (an event `pause`
-- `refused`). Returns whether it goes on.
function run_begins(run, now, most)
  local r = rkey(run)
  local wf, cg = unpack(redis.call('HMGET', r, 'wf', 'cg'))
  local control = { run = (cg and cg ~= '') and cg or nil }
  local refused = admit_new_run(wf, control, most)
  if refused then
    local why = refusal_reason(wf, refused)
    event(run, '', 'pause', 'refused', 0, now, why)
    note(string.format('run %s cancelled: %s', run, why))
    cancel_whole_run(run, now, why)
    return false
  end
  if control.wait then redis.call('HSET', r, 'wait', control.wait) end
  start_new_run(run, wf, control, now)
  return true
end
