--- @include "leases"
--- @include "runs"
--- @include "confine"
-- ARGV: lease_id, caller (see live_lease), wait (1|0), max jobs in a run,
-- njobs, then per job: id, spec JSON, meta (as in a definition), needs.
-- Jobs join the running run of the spawning job (Buildkite's pipeline
-- upload). They may need any job of the run; with `wait`, the spawning
-- job's dependents wait for them too. They are confined to what the
-- spawning job's stored spec allows (see _confine.lua), and none runs
-- beside a gate of the run that has not passed: each new job needs every
-- gate not yet succeeded that does not already wait for it. Checked whole
-- before anything is written: Returns {'ok', n} | {'lost'} | {'forbidden'}
-- | {'cancelled'} | {'exists', id} | {'unknown', job, need} | {'cycle', job}
-- | {'too_many', max} | {'not_allowed', job, what ('labels' |
-- 'spawn.labels' | 'spawn.workflows'), the label or workflow, spawner,
-- what it allows of that kind (sorted, comma-separated)}.
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

-- The whole graph as it would be: every job's needs; and the gates not
-- yet passed.
local needs, gates = {}, {}
for _, job in ipairs(existing) do
  local list, gate, st = unpack(jmget(jkey(run, job), 'needs', 'gate', 'st'))
  needs[job] = split(list, ',')
  if gate and gate ~= '' and st ~= 'success' then gates[#gates + 1] = job end
end
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
-- Nothing beyond the spawner's own labels and its allow-list; a new job's
-- own allow-list within the spawner's, so a chain of spawns never widens.
local allow = allowance(run, spawner)
local function refuse(id, what, name, set)
  local names = {}
  for item in pairs(set) do names[#names + 1] = item end
  table.sort(names)
  return { 'not_allowed', id, what, name, spawner, table.concat(names, ',') }
end
for _, id in ipairs(order) do
  local lk = string.match(new[id].meta, '^([^\t]*)')
  local label = first_outside(split(lk, ','), allow.labels)
  if label then return refuse(id, 'labels', label, allow.labels) end
  local spec = cjson.decode(new[id].spec)
  if type(spec.spawn) == 'table' then
    label = first_outside(spec.spawn.labels, allow.labels)
    if label then return refuse(id, 'spawn.labels', label, allow.labels) end
    local wf = first_outside(spec.spawn.workflows, allow.workflows)
    if wf then return refuse(id, 'spawn.workflows', wf, allow.workflows) end
  end
end
for _, id in ipairs(order) do
  for _, need in ipairs(new[id].needs) do
    if not needs[need] and not new[need] then return { 'unknown', id, need } end
  end
  needs[id] = new[id].needs
end
local dependents = wait and split(jget(jkey(run, spawner), 'deps'), ',') or {}
for _, d in ipairs(dependents) do
  local extended = {}
  for _, x in ipairs(needs[d]) do extended[#extended + 1] = x end
  for _, id in ipairs(order) do extended[#extended + 1] = id end
  needs[d] = extended
end
-- A gate not passed holds back every new job it does not itself wait for
-- (those run before it, as the spawner's own work does). Gates upstream of
-- the spawner have passed: it is running.
for _, gate in ipairs(gates) do
  local upstream, queue, i = { [gate] = true }, { gate }, 1
  while i <= #queue do
    for _, need in ipairs(needs[queue[i]] or {}) do
      if not upstream[need] then
        upstream[need] = true
        queue[#queue + 1] = need
      end
    end
    i = i + 1
  end
  for _, id in ipairs(order) do
    local has = upstream[id]
    for _, need in ipairs(new[id].needs) do has = has or need == gate end
    if not has then table.insert(new[id].needs, gate) end
  end
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
      local d = jget(nk, 'deps')
      redis.call('HSET', nk, 'deps', (d ~= '' and d .. ',' or '') .. id)
    end
  end
end
for _, d in ipairs(dependents) do
  local dk = jkey(run, d)
  local cur = jget(dk, 'needs')
  redis.call('HSET', dk, 'needs', (cur ~= '' and cur .. ',' or '') .. table.concat(order, ','))
  redis.call('HINCRBY', dk, 'rem', #order)
end
local all = {}
for _, job in ipairs(existing) do all[#all + 1] = job end
for _, id in ipairs(order) do all[#all + 1] = id end
redis.call('HSET', r, 'jobs', table.concat(all, ','))
event(run, spawner, 'spawn', 'running', tonumber(lease.att), now, table.concat(order, ','))
-- Each new job: waiting on needs not yet settled; skipped if one did not
-- succeed (unless its if: asks about that), which its dependents hear;
-- else enqueued, or decided first.
for _, id in ipairs(order) do
  local rem, up, dead = 0, '', nil
  for _, need in ipairs(new[id].needs) do
    local st, nup, ncf = unpack(jmget(jkey(run, need), 'st', 'up', 'cf'))
    if not TERMINAL[st] then
      rem = rem + 1
    else
      local concluded = CONCLUDED[conclusion(st, ncf)]
      up = union(union(up, nup), concluded or '')
      if concluded then dead = need end
    end
  end
  redis.call('HSET', jkey(run, id), 'rem', rem, 'up', up)
  local fl = jget(jkey(run, id), 'fl')
  if up ~= '' and not has(fl, 'a') then
    skip_job(run, id, nil, now, 'upstream ' .. (dead or 'of a need') .. ' did not succeed')
    cascade(run, id, now)
  elseif rem > 0 then
    set_status(run, id, nil, 'waiting')
  elseif has(fl, 'd') then
    begin_deciding(run, id, nil, now)
  else
    event(run, id, 'job', 'queued', 0, now, 'spawned by ' .. spawner)
    enqueue(run, id, nil, now, 0)
  end
end
return { 'ok', #order }
