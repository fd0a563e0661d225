--- @include "leases"
-- ARGV: lease_id, caller (see live_lease), wait (1|0), max jobs in a run,
-- njobs, then per job: id, spec JSON, meta (as in a definition), needs.
-- Jobs join the running run of the spawning job (Buildkite's pipeline
-- upload). They may need any job of the run; with `wait`, the spawning
-- job's dependents wait for them too. Checked whole before anything is
-- written: Returns {'ok', n} | {'lost'} | {'forbidden'} | {'cancelled'} |
-- {'exists', id} | {'unknown', job, need} | {'cycle', job} | {'too_many', max}.
local lid, caller, wait, max, n = ARGV[1], ARGV[2], ARGV[3] == '1', tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
local lease, refusal = live_lease(lid, now, caller)
if not lease then return lease_gone(lid, caller, refusal) end
if lease.st ~= 'running' then return { lease.st } end
local run, spawner = lease.run, lease.job
local r = rkey(run)
local existing = split(redis.call('HGET', r, 'jobs'), ',')
if #existing + n > max then return { 'too_many', max } end
local rdef = P .. 'rdef:' .. run

-- The whole graph as it would be: every job's needs.
local needs = {}
for _, job in ipairs(existing) do needs[job] = split(redis.call('HGET', jkey(run, job), 'needs'), ',') end
local new, order = {}, {}
for i = 0, n - 1 do
  local b = 5 + i * 4
  local id = ARGV[b + 1]
  if new[id] then return { 'exists', id } end
  if needs[id] then
    -- The same job spawned by this same job before (an earlier attempt of
    -- it, or a resent call) is already there; anything else is a clash.
    local by, spec = unpack(redis.call('HMGET', rdef, 'b:' .. id, 's:' .. id))
    if by ~= spawner or spec ~= ARGV[b + 2] then return { 'exists', id } end
  else
    new[id] = { spec = ARGV[b + 2], meta = ARGV[b + 3], needs = split(ARGV[b + 4], ',') }
    order[#order + 1] = id
  end
end
if #order == 0 then return { 'ok', 0 } end
for _, id in ipairs(order) do
  for _, need in ipairs(new[id].needs) do
    if not needs[need] and not new[need] then return { 'unknown', id, need } end
  end
  needs[id] = new[id].needs
end
local dependents = wait and split(redis.call('HGET', jkey(run, spawner), 'deps'), ',') or {}
for _, d in ipairs(dependents) do
  local extended = {}
  for _, x in ipairs(needs[d]) do extended[#extended + 1] = x end
  for _, id in ipairs(order) do extended[#extended + 1] = id end
  needs[d] = extended
end
-- Kahn: every job must come out once its needs have.
local indegree, users, left = {}, {}, 0
for job, list in pairs(needs) do
  indegree[job] = #list
  left = left + 1
  for _, need in ipairs(list) do
    users[need] = users[need] or {}
    table.insert(users[need], job)
  end
end
local queue = {}
for job, deg in pairs(indegree) do if deg == 0 then queue[#queue + 1] = job end end
local i = 1
while i <= #queue do
  local job = queue[i]
  left = left - 1
  for _, user in ipairs(users[job] or {}) do
    indegree[user] = indegree[user] - 1
    if indegree[user] == 0 then queue[#queue + 1] = user end
  end
  i = i + 1
end
if left > 0 then
  for _, id in ipairs(order) do if indegree[id] > 0 then return { 'cycle', id } end end
  return { 'cycle', spawner }
end

-- Write it.
redis.call('HSET', r, 'spawned', 1)
for _, id in ipairs(order) do
  local job = new[id]
  local deps = {}
  for _, d in ipairs(dependents) do deps[#deps + 1] = d end
  for _, other in ipairs(order) do
    for _, need in ipairs(new[other].needs) do if need == id then deps[#deps + 1] = other end end
  end
  redis.call('HSET', rdef, 's:' .. id, job.spec, 'b:' .. id, spawner)
  init_job(run, id, job.meta, table.concat(job.needs, ','), table.concat(deps, ','), 0)
end
-- Existing jobs needed by new ones know them as dependents; the spawner's
-- dependents now need the new jobs.
for _, id in ipairs(order) do
  for _, need in ipairs(new[id].needs) do
    if not new[need] then
      local nk = jkey(run, need)
      local d = redis.call('HGET', nk, 'deps')
      redis.call('HSET', nk, 'deps', (d ~= '' and d .. ',' or '') .. id)
    end
  end
end
for _, d in ipairs(dependents) do
  local dk = jkey(run, d)
  local cur = redis.call('HGET', dk, 'needs')
  redis.call('HSET', dk, 'needs', (cur ~= '' and cur .. ',' or '') .. table.concat(order, ','))
  redis.call('HINCRBY', dk, 'rem', #order)
end
local all = {}
for _, job in ipairs(existing) do all[#all + 1] = job end
for _, id in ipairs(order) do all[#all + 1] = id end
redis.call('HSET', r, 'jobs', table.concat(all, ','))
event(run, spawner, 'spawn', 'running', tonumber(lease.att), now, table.concat(order, ','))
-- Each new job: waiting on needs not yet met, skipped if one already
-- failed, else enqueued.
local blocked = { failure = true, skipped = true, cancelled = true }
for _, id in ipairs(order) do
  local rem, dead = 0, nil
  for _, need in ipairs(new[id].needs) do
    local st = redis.call('HGET', jkey(run, need), 'st')
    if st ~= 'success' then rem = rem + 1 end
    if blocked[st] then dead = need end
  end
  redis.call('HSET', jkey(run, id), 'rem', rem)
  if dead then
    set_status(run, id, nil, 'skipped')
    redis.call('HSET', jkey(run, id), 'end', now, 'err', 'upstream ' .. dead .. ' did not succeed')
    event(run, id, 'job', 'skipped', 0, now, 'upstream ' .. dead .. ' did not succeed')
  elseif rem == 0 then
    event(run, id, 'job', 'queued', 0, now, 'spawned by ' .. spawner)
    enqueue(run, id, nil, now, 0)
  else
    set_status(run, id, nil, 'waiting')
  end
end
return { 'ok', #order }
