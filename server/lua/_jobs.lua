--- @include "states"
-- What a job's end means for the jobs after it (GitHub's rules: "Using
-- conditions to control job execution"), the matrix jobs whose
-- combinations run in the run, and starting a run.
--
-- A job settles when it ends: success, failure, cancelled or skipped. Its
-- conclusion is that, except that a continue-on-error job's failure
-- concludes success. Each dependent hears it: one need fewer to wait for
-- (`rem`), and what its ancestors concluded besides success (`up`). A
-- dependent whose if: calls no status function (or that has no if:) is
-- skipped as soon as something upstream did not succeed; otherwise, once
-- all its needs have settled, it is enqueued, or, when it must be decided
-- (flag d), put in `deciding` and handed to the server (DECIDE).
--
-- A matrix job (flag x) is decided into combinations: jobs of the run
-- (`agg`, `tpl`: the matrix job), never claimed itself (`expanded`) and
-- settling once all of them have: failure if one failed (a
-- continue-on-error one aside), else cancelled if one was, else success,
-- its outputs theirs merged as they succeed (the last one wins a key).
--   rj of a matrix job: combos (ids, in order), crem (not yet settled),
--   held (beyond max-parallel, in order), mp, ff (fail-fast), cfail,
--   ccan, omax (the merged outputs' bound)

local CONCLUDED = { failure = 'f', cancelled = 'c', skipped = 's' }
local SAID = { failure = 'failed', cancelled = 'was cancelled', skipped = 'was skipped' }

local function conclusion(st, cf)
  if st == 'failure' and cf == '1' then return 'success' end
  return st
end

-- The letters of `a` and of `b`, each once, in the order f c s.
local function union(a, b)
  if not a or a == '' then return b or '' end
  if not b or b == '' or a == b then return a end
  local out = ''
  if has(a, 'f') or has(b, 'f') then out = 'f' end
  if has(a, 'c') or has(b, 'c') then out = out .. 'c' end
  if has(a, 's') or has(b, 's') then out = out .. 's' end
  return out
end

local function begin_deciding(run, job, old, now)
  set_status(run, job, old, 'deciding')
  redis.call('HSET', jkey(run, job), 'enq', now)
  redis.call('ZADD', P .. 'deciding', num(now), member(run, job))
  DECIDE[#DECIDE + 1] = run
  DECIDE[#DECIDE + 1] = job
end

-- A job whose needs have all settled: enqueued, or decided first. `fl`:
-- its flags, when the caller has read them.
local function needs_settled(run, job, old, now, fl)
  if fl == nil then fl = jget(jkey(run, job), 'fl') end
  if has(fl, 'd') then
    begin_deciding(run, job, old, now)
  else
    -- the event first: a gate's enqueue goes straight on to `waiting`
    event(run, job, 'job', 'queued', tonumber(jget(jkey(run, job), 'att')) or 0, now, 'needs met')
    enqueue(run, job, old, now, 0)
  end
end

local function skip_job(run, job, old, now, why)
  set_status(run, job, old, 'skipped')
  redis.call('HSET', jkey(run, job), 'end', now, 'err', why)
  event(run, job, 'job', 'skipped', tonumber(jget(jkey(run, job), 'att')) or 0, now, why)
  redis.call('PUBLISH', jobchan(run, job), 'skipped')
end

-- The next combination held back by max-parallel starts (FIFO).
local function release_held(run, agg, now)
  local ak = jkey(run, agg)
  local held = split(jget(ak, 'held'), ',')
  while #held > 0 do
    local c = table.remove(held, 1)
    if jget(jkey(run, c), 'st') == 'held' then
      redis.call('HSET', jkey(run, c), 'hold', '')
      event(run, c, 'job', 'queued', tonumber(jget(jkey(run, c), 'att')) or 0, now,
        'max-parallel: its turn')
      enqueue(run, c, 'held', now, 0)
      break
    end
  end
  redis.call('HSET', ak, 'held', table.concat(held, ','))
end

-- A combination's outputs join its matrix job's, the last to succeed
-- winning a key; skipped (with an event) if they would pass the bound.
local function merge_outputs(run, agg, combo, now)
  local ak = jkey(run, agg)
  local cur, omax = unpack(jmget(ak, 'out', 'omax'))
  local add = jget(jkey(run, combo), 'out')
  if not add or add == '' or add == '{}' then return end
  local merged = (cur and cur ~= '') and cjson.decode(cur) or {}
  for key, value in pairs(cjson.decode(add)) do merged[key] = value end
  local size = 0
  for key, value in pairs(merged) do size = size + #key + #value end
  if size > (tonumber(omax) or 1048576) then
    event(run, agg, 'matrix', 'running', 0, now, 'outputs of ' .. combo .. ' not merged: with the others, more'
      .. ' than ' .. (omax or '?') .. ' bytes')
    return
  end
  redis.call('HSET', ak, 'out', cjson.encode(merged))
end

-- A combination settled: its matrix job counts it, cancels the others on
-- a failure (fail-fast), starts the next held one, and settles once all
-- have. Returns the jobs that settled because of it, for the cascade.
local function combination_settled(run, agg, combo, concl, now)
  local ak = jkey(run, agg)
  local out = {}
  local ast, ff, combos = unpack(jmget(ak, 'st', 'ff', 'combos'))
  if ast ~= 'expanded' then return out end
  local left = redis.call('HINCRBY', ak, 'crem', -1)
  if concl == 'failure' then
    redis.call('HSET', ak, 'cfail', 1)
    if ff == '1' then
      redis.call('HSET', ak, 'held', '')
      for _, c in ipairs(split(combos, ',')) do
        if c ~= combo and cancel_one(run, c, now, 'fail-fast: ' .. combo .. ' failed') then out[#out + 1] = c end
      end
    end
  elseif concl == 'cancelled' then
    redis.call('HSET', ak, 'ccan', 1)
  elseif jget(jkey(run, combo), 'st') == 'success' then
    merge_outputs(run, agg, combo, now)
  end
  -- the slot it held goes to the next (a held one that was cancelled held none)
  if jget(jkey(run, combo), 'hold') ~= '1' then release_held(run, agg, now) end
  if left <= 0 then
    local cfail, ccan, att = unpack(jmget(ak, 'cfail', 'ccan', 'att'))
    local result = cfail == '1' and 'failure' or (ccan == '1' and 'cancelled' or 'success')
    set_status(run, agg, 'expanded', result)
    local why = ''
    if result == 'failure' then why = 'a combination failed' elseif result == 'cancelled' then
      why = 'a combination was cancelled' end
    redis.call('HSET', ak, 'end', now, 'err', why)
    event(run, agg, 'job', result, tonumber(att) or 0, now, why)
    redis.call('PUBLISH', jobchan(run, agg), 'changed')
    out[#out + 1] = agg
  end
  return out
end

-- A job settled: every job after it hears it, and so on down (a skip is
-- a settling too). Iterative, so a long chain costs no Lua stack. `first`:
-- the job's st, up, deps, agg and cf, when the caller has read them.
local function cascade(run, job, now, first)
  local queue, whys = { job }, { '' }
  local i = 1
  while i <= #queue do
    local j = queue[i]
    local st, up, deps, agg, cf
    if i == 1 and first then
      st, up, deps, agg, cf = unpack(first)
    else
      st, up, deps, agg, cf = unpack(jmget(jkey(run, j), 'st', 'up', 'deps', 'agg', 'cf'))
    end
    local concl = conclusion(st, cf)
    local pass = union(up, CONCLUDED[concl] or '')
    local why = whys[i]
    if why == '' then
      if CONCLUDED[concl] then
        why = 'upstream ' .. j .. ' ' .. SAID[concl]
      elseif pass ~= '' then
        local worst = has(pass, 'f') and 'failure' or (has(pass, 'c') and 'cancelled' or 'skipped')
        why = 'a job upstream of ' .. j .. ' ' .. SAID[worst]
      end
    end
    for _, d in ipairs(split(deps, ',')) do
      local dk = jkey(run, d)
      local dst, dup, dfl = unpack(jmget(dk, 'st', 'up', 'fl'))
      if dst == 'waiting' then
        local rem = redis.call('HINCRBY', dk, 'rem', -1)
        local merged = union(dup, pass)
        if merged ~= (dup or '') then redis.call('HSET', dk, 'up', merged) end
        if merged ~= '' and not has(dfl, 'a') then
          skip_job(run, d, 'waiting', now, why)
          queue[#queue + 1] = d
          whys[#whys + 1] = why
        elseif rem <= 0 then
          needs_settled(run, d, 'waiting', now, dfl or '')
        end
      end
    end
    if agg and agg ~= '' then
      for _, more in ipairs(combination_settled(run, agg, j, concl, now)) do
        queue[#queue + 1] = more
        whys[#whys + 1] = ''
      end
    end
    i = i + 1
  end
end

-- A job that will not run again: a dead letter, and what comes after it
-- hears it (skipped, unless its if: asks about failures). A
-- continue-on-error job's failure is counted apart: it fails no run.
-- `kind` says why (failure | timed_out | lost | system: the server's own
-- doing, a wait that timed out); the run keeps the first such job's (fjob
-- fkind ferr) and counts its dead letters (ndead), so its status can say
-- how it failed without reading its jobs.
-- `reason`: what failed it, for rota_failures_total, when no failed
-- attempt (fail_attempt) has counted it already.
local function fail_for_good(run, job, from, att, err, now, kind, reason)
  if reason then tally('failures:' .. reason) end
  tally('dead_letters')
  set_status(run, job, from, 'failure')
  event(run, job, 'job', 'failure', att, now, err)
  note(string.format('job %s/%s failed for good (attempt %d): %s', run, job, att, err))
  -- scored by a sequence, not the clock: a cursor through them stays exact
  redis.call('ZADD', P .. 'dead', redis.call('INCR', P .. 'deadseq'), member(run, job))
  local r = rkey(run)
  redis.call('HINCRBY', r, 'ndead', 1)
  local fl, coe = unpack(jmget(jkey(run, job), 'fl', 'coe'))
  if has(fl, 'c') or coe == '1' then
    redis.call('HSET', jkey(run, job), 'cf', 1)
    redis.call('HINCRBY', r, 'cofail', 1)
  elseif (redis.call('HGET', r, 'fjob') or '') == '' then
    -- (a continue-on-error job's failure is not how its run failed)
    redis.call('HSET', r, 'fjob', job, 'fkind', kind or 'failure', 'ferr', err)
  end
  cascade(run, job, now)
end

-- A failed attempt of a running job: retry with backoff while its budget
-- allows, else fail for good (a dead letter) and skip everything
-- downstream. `status` names how the attempt ended (failure, timed_out,
-- lost); `reason`, for rota_failures_total, when that does not say it.
-- Returns what became of the job: 'retrying' or 'failure'.
local FAILURE_REASONS = { failure = 'error', timed_out = 'timeout', lost = 'lease_expired' }
local function fail_attempt(run, job, now, err, retryable, status, from, reason)
  from = from or 'running'
  tally('failures:' .. (reason or FAILURE_REASONS[status or 'failure'] or 'error'))
  local k = jkey(run, job)
  local att, base, mr, bk, b1, b2, worker, start = unpack(jmget(k,
    'att', 'base', 'mr', 'bk', 'b1', 'b2', 'worker', 'start'))
  att, base = tonumber(att) or 0, tonumber(base) or 0
  redis.call('HSET', k, 'err', err, 'end', now)
  record_attempt(run, job, att, worker, start, now, status or 'failure', err)
  local outcome = 'failure'
  if retryable and att - base < (tonumber(mr) or 0) then
    -- a new attempt starts without the outputs the failed one upserted
    redis.call('HSET', k, 'att', att + 1, 'out', '', 'lout', '')
    clear_attempt(k)
    local delay = backoff_ms(bk, b1, b2, att - base)
    enqueue(run, job, from, now, delay)
    event(run, job, 'job', 'queued', att + 1, now, 'retrying: ' .. err)
    note(string.format('job %s/%s attempt %d failed, retry in %.1fs: %s', run, job, att, delay / 1000, err))
    outcome = 'retrying'
    tally('retries')
  else
    fail_for_good(run, job, from, att, err, now, status or 'failure')
  end
  redis.call('PUBLISH', jobchan(run, job), 'changed')
  maybe_finish(run, now)
  return outcome
end

-- A job succeeded with these outputs (JSON): the jobs after it hear it.
-- `row`: its att, deps, agg, up and cg, when the caller has read them.
local function succeed(run, job, from, outputs, now, detail, row)
  local k = jkey(run, job)
  local att, deps, agg, up, cg = unpack(row or jmget(k, 'att', 'deps', 'agg', 'up', 'cg'))
  set_status(run, job, from, 'success', cg or '', { 'out', outputs, 'err', '', 'end', now })
  event(run, job, 'job', 'success', tonumber(att) or 0, now, detail or '')
  redis.call('PUBLISH', jobchan(run, job), 'changed')
  -- nothing after it (a leaf, not a matrix combination): nobody to tell
  if (deps and deps ~= '') or (agg and agg ~= '') then
    cascade(run, job, now, { 'success', up or '', deps or '', agg or '', '' })
  end
  -- Another job of the run still running (what comes after this one never
  -- is: it was waiting) keeps it from finishing: nothing to read.
  if from == 'running' and count_of(run, 'n:running') > 0 then return end
  maybe_finish(run, now)
end

-- Cancels a run (cancel_run, and run control: a member its concurrency
-- group pushes out, a run its paused workflow turns away): its queued jobs
-- end at once, a running one keeps its lease until its worker hears it. A
-- job not yet started whose if: calls a status function is spared (it is
-- decided once its needs have settled, cancelled() answering true), unless
-- the run was cancelled before or never started (a delayed run, or one
-- still waiting for its paused workflow or its concurrency group).
local function cancel_whole_run(run, now, why)
  local r = rkey(run)
  local state, jobs, before, wait = unpack(redis.call('HMGET', r, 'state', 'jobs', 'cancelled', 'wait'))
  local force = before == '1' or state == 'delayed' or (wait and wait ~= '') or false
  redis.call('ZREM', P .. 'delayedruns', run)
  redis.call('HSET', r, 'cancelled', 1, 'state', 'active')
  local ended = {}
  for _, job in ipairs(split(jobs, ',')) do
    local st, fl = unpack(jmget(jkey(run, job), 'st', 'fl'))
    local spared = has(fl, 'a') and (st == 'waiting' or st == 'deciding')
    if (force or not spared) and cancel_one(run, job, now, why) then ended[#ended + 1] = job end
  end
  -- what the spared jobs wait for has settled now
  for _, job in ipairs(ended) do cascade(run, job, now) end
  maybe_finish(run, now)
end
