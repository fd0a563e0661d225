--- @include "keys"
-- What a running job may spawn, from its stored spec only (never from the
-- request): jobs carrying its own labels, or those its `spawn: {labels}`
-- allows; child runs of the workflows its `spawn: {workflows}` lists.

-- A job's spec as stored: a spawned job's with its run, any other's in
-- the run's definition version.
local function stored_spec(run, job)
  local raw = redis.call('HGET', P .. 'rdef:' .. run, 's:' .. job)
  if not raw then
    local wf, ver = unpack(redis.call('HMGET', rkey(run), 'wf', 'ver'))
    raw = def_spec(dkey(wf, ver), job)
  end
  return raw and cjson.decode(raw) or {}
end

local function as_set(list)
  local set = {}
  if type(list) == 'table' then
    for _, item in ipairs(list) do set[item] = true end
  end
  return set
end

-- {labels = set, workflows = set}: what the job may give what it spawns.
local function allowance(run, job)
  local spec = stored_spec(run, job)
  local allow = type(spec.spawn) == 'table' and spec.spawn or {}
  local labels = as_set(allow.labels)
  for _, l in ipairs(split(jget(jkey(run, job), 'lk'), ',')) do labels[l] = true end
  return { labels = labels, workflows = as_set(allow.workflows) }
end

-- The first item of `list` not in `set`, or nil.
local function first_outside(list, set)
  if type(list) ~= 'table' then return nil end
  for _, item in ipairs(list) do
    if not set[item] then return item end
  end
  return nil
end
