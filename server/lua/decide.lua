--- @include "retry"
-- A job's decision, made by the server (server/store/deciding.py) once its
-- needs have settled: its if:, matrix and expressions evaluated. Acts only
-- on a job still `deciding`, so two processes deciding one job (or the
-- reaper deciding one whose process died) change it once.
-- ARGV: run id, job id, the run's `cancelled` as the decision saw it
-- ('1' | '0': a cancel since then makes it stale), verdict, then:
--   skip:   why
--   fail:   the error (the job fails for good, as a dead letter)
--   run:    the rendered fields (JSON, kept in jdec:<run>), label key,
--           continue-on-error ('1' | '')
--   expand: most jobs in a run, the merged outputs' bound, fail-fast
--           ('1' | '0'), max-parallel, n, then per combination: id,
--           rendered fields (JSON), label key, continue-on-error
-- Returns {'ok'} | {'gone', status} (not deciding: decided already, or
-- cancelled) | {'stale'} (decide again).
local run, job, seen, verdict = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now = now_ms()
local k = jkey(run, job)
local st, att = unpack(jmget(k, 'st', 'att'))
if st ~= 'deciding' then
  redis.call('ZREM', P .. 'deciding', member(run, job))
  return { 'gone', st or '' }
end
if (redis.call('HGET', rkey(run), 'cancelled') == '1') ~= (seen == '1') then return { 'stale' } end
redis.call('ZREM', P .. 'deciding', member(run, job))
att = tonumber(att) or 0
-- the run views read jdec:<run> only for a run that has decided jobs
if verdict == 'run' or verdict == 'expand' then redis.call('HSET', rkey(run), 'hdec', 1) end

local function fail(err)
  redis.call('HSET', k, 'err', err, 'end', now)
  fail_for_good(run, job, 'deciding', att, err, now, nil, 'decide_error')
  redis.call('PUBLISH', jobchan(run, job), 'changed')
end

-- Its combinations, new (a first decision) or those that did not succeed
-- (a retry: their earlier decision stands). Returns {id, old state} pairs
-- to place, or nil having failed the job.
local function combinations()
  local existing = jget(k, 'combos')
  local place = {}
  if existing and existing ~= '' then
    local again = {}
    for _, c in ipairs(split(existing, ',')) do
      if jget(jkey(run, c), 'st') ~= 'success' then
        again[c] = true
        place[#place + 1] = { c, 'created' }
      end
    end
    reset_jobs(run, again, now)
    return place, split(existing, ',')
  end
  local maxjobs, n = tonumber(ARGV[5]), tonumber(ARGV[9])
  local r = rkey(run)
  local jobs = split(redis.call('HGET', r, 'jobs'), ',')
  if #jobs + n > maxjobs then
    fail(string.format('the matrix makes %d combinations; with the run\'s %d jobs that is more than %d', n,
      #jobs, maxjobs))
    return nil
  end
  local pr, mr, bk, b1, b2, needs = unpack(jmget(k, 'pr', 'mr', 'bk', 'b1', 'b2', 'needs'))
  local ids = {}
  for i = 0, n - 1 do
    local b = 9 + i * 4
    local id = ARGV[b + 1]
    if redis.call('EXISTS', jkey(run, id)) == 1 then
      fail('combination ' .. id .. ': the run already has a job with that id')
      return nil
    end
    ids[#ids + 1] = id
  end
  for i = 0, n - 1 do
    local b = 9 + i * 4
    local id, decided, lk, coe = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
    redis.call('HSET', P .. 'jdec:' .. run, id, decided)
    redis.call('HSET', jkey(run, id), 'st', 'created', 'att', 0, 'base', 0, 'rem', 0, 'lease', '', 'worker', '',
      'enq', 0, 'dly', 0, 'start', '', 'end', '', 'out', '', 'err', '', 'lk', lk, 'pr', pr, 'mr', mr, 'bk', bk,
      'b1', b1, 'b2', b2, 'gate', '', 'gsecs', '', 'fl', coe == '1' and 'c' or '', 'coe', coe, 'up', '',
      'needs', needs or '', 'deps', '', 'tpl', job, 'agg', job, 'dec', 1)
    jobs[#jobs + 1] = id
    place[#place + 1] = { id, nil }
  end
  redis.call('HSET', r, 'jobs', table.concat(jobs, ','))
  return place, ids
end

if verdict == 'skip' then
  skip_job(run, job, 'deciding', now, ARGV[5])
  cascade(run, job, now)
elseif verdict == 'fail' then
  fail(ARGV[5])
elseif verdict == 'run' then
  redis.call('HSET', P .. 'jdec:' .. run, job, ARGV[5])
  redis.call('HSET', k, 'lk', ARGV[6], 'coe', ARGV[7], 'dec', 1)
  -- the event first: a gate's enqueue goes straight on to `waiting`
  event(run, job, 'job', 'queued', att, now, 'needs met')
  enqueue(run, job, 'deciding', now, 0)
elseif verdict == 'expand' then
  local place, ids = combinations()
  if place then
    local mp = tonumber(ARGV[8])
    redis.call('HSET', k, 'combos', table.concat(ids, ','), 'crem', #place, 'mp', mp, 'ff', ARGV[7],
      'omax', ARGV[6], 'cfail', '', 'ccan', '', 'held', '', 'out', '', 'dec', 1)
    -- a retry keeps what its combinations that succeeded set
    for _, c in ipairs(ids) do
      if jget(jkey(run, c), 'st') == 'success' then merge_outputs(run, job, c, now) end
    end
    set_status(run, job, 'deciding', 'expanded')
    redis.call('HSET', k, 'start', now)
    event(run, job, 'job', 'running', att, now, 'matrix: ' .. #place .. ' combination(s) to run')
    redis.call('PUBLISH', jobchan(run, job), 'changed')
    local held = {}
    for i, entry in ipairs(place) do
      local c, old = entry[1], entry[2]
      local catt = tonumber(jget(jkey(run, c), 'att')) or 0
      if i <= mp then
        event(run, c, 'job', 'queued', catt, now, 'combination of ' .. job)
        enqueue(run, c, old, now, 0)
      else
        set_status(run, c, old, 'held')
        redis.call('HSET', jkey(run, c), 'hold', 1)
        event(run, c, 'job', 'queued', catt, now, 'combination of ' .. job .. ', held by max-parallel')
        held[#held + 1] = c
      end
    end
    redis.call('HSET', k, 'held', table.concat(held, ','))
    if #place == 0 then
      -- nothing left to run (a retry whose combinations all succeeded)
      set_status(run, job, 'expanded', 'success')
      redis.call('HSET', k, 'end', now, 'err', '')
      event(run, job, 'job', 'success', att, now, '')
      cascade(run, job, now)
    end
  end
end
maybe_finish(run, now)
return { 'ok' }
