--- @include "quota"
--- @include "schedules"
-- Definition versions are shared by the runs that use them and by their
-- workflow (while current): `refs` counts those, and the last to let go
-- deletes the version.
local function release_def(wf, ver)
  local d = dkey(wf, ver)
  if redis.call('HINCRBY', d, 'refs', -1) <= 0 then
    redis.call('DEL', d, P .. 'doc:' .. wf .. ':' .. ver)
  end
end

-- Deletes a finished run whole: its jobs, attempts, logs, events, dead
-- letters and its hold on its definition version.
local function purge_run(run)
  local r = rkey(run)
  PURGED[run] = true
  local wf, ver, jobs, bver = unpack(redis.call('HMGET', r, 'wf', 'ver', 'jobs', 'bver'))
  if not wf then return end
  for _, job in ipairs(split(jobs, ',')) do
    redis.call('DEL', jkey(run, job), akey(run, job), logkey(run, job), P .. 'steps:' .. run .. ':' .. job,
      P .. 'ann:' .. run .. ':' .. job, P .. 'ckpt:' .. run .. ':' .. job, P .. 'ckpts:' .. run .. ':' .. job)
    redis.call('ZREM', P .. 'dead', member(run, job))
  end
  redis.call('DEL', r, evkey(run), P .. 'rdef:' .. run, P .. 'notes:' .. run, P .. 'state:' .. run,
    P .. 'children:' .. run, P .. 'rmeta:' .. run, P .. 'souts:' .. run, P .. 'conts:' .. run, P .. 'jdec:' .. run)
  redis.call('ZREM', P .. 'runs', run)
  redis.call('ZREM', P .. 'wfruns:' .. wf, run)
  redis.call('ZREM', P .. 'finished', run)
  redis.call('ZREM', P .. 'expiring', run)
  release_def(wf, ver)
  -- a run with per-run overrides holds the version they were applied to too
  if bver and bver ~= '' then release_def(wf, bver) end
end

-- One-off workflows by name (named:<name>, see _keys.lua), so one can be
-- found by its name while that is unique.
local function unname_oneoff(wf)
  local name, kind = unpack(redis.call('HMGET', wkey(wf), 'name', 'kind'))
  if kind == 'oneoff' and name then redis.call('ZREM', P .. 'named:' .. name, wf) end
end

-- Deletes a workflow that has no runs left: its definition goes with it.
local function drop_workflow(wf)
  local ver = redis.call('HGET', wkey(wf), 'ver')
  if ver then release_def(wf, ver) end
  drop_schedules(wf, 0)
  unname_oneoff(wf)
  untrack_oneoff(wf)
  redis.call('DEL', wkey(wf), P .. 'wfruns:' .. wf)
  redis.call('ZREM', P .. 'wfs', wf)
  redis.call('ZREM', P .. 'pwfs', wf)
  redis.call('ZREM', P .. 'oneoffs', wf)
end
