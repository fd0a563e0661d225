--- @include "keys"
-- Schedules: one per entry of a stored workflow's `on: schedule:`.
--
--   sched:<wf>:<n>  hash: id wf n cron tz cu (catch-up) ov (overlap) spec
--                   (the entry as text, to notice a change) paused pausedat
--                   last (ms: the tick last handled, or when the schedule was
--                   created, changed or resumed: ticks count from there)
--                   ltick (the tick of the latest run it started) next
--                   lastrun fired (runs started) skipped (ticks skipped
--                   while the previous run went on, overlap: skip)
--                   created
--   schedules       zset: every schedule id by creation time
--   schedq          zset: the unpaused schedules by when they are next due
--                   (0: compute now)
-- The scheduler (server/scheduler.py) computes the ticks with cron and
-- hands them to fire_schedule, which claims them and starts their runs in
-- one step, only if the schedule is as it read it.
local function skey(id) return P .. 'sched:' .. id end

local function drop_schedule(id)
  redis.call('DEL', skey(id))
  redis.call('ZREM', P .. 'schedules', id)
  redis.call('ZREM', P .. 'schedq', id)
end

-- A workflow's schedules from index `from` on (0: all of them).
local function drop_schedules(wf, from)
  local n = tonumber(redis.call('HGET', wkey(wf), 'nsched')) or 0
  for i = from, n - 1 do drop_schedule(wf .. ':' .. i) end
end

-- A definition's schedules (JSON: [{cron, tz, cu, ov, spec}]) replace the
-- workflow's: an entry that changed starts counting ticks from now (so a
-- new cron fires nothing for times before it existed); one that did not
-- keeps its state; a paused one stays paused.
local function sync_schedules(wf, list, now)
  for i, s in ipairs(list) do
    local id = wf .. ':' .. (i - 1)
    local k = skey(id)
    local spec, paused = unpack(redis.call('HMGET', k, 'spec', 'paused'))
    if spec ~= s.spec then
      redis.call('HSET', k, 'id', id, 'wf', wf, 'n', i - 1, 'cron', s.cron, 'tz', s.tz, 'cu', s.cu, 'ov', s.ov,
        'spec', s.spec, 'last', now, 'next', 0)
      if not spec then
        redis.call('HSET', k, 'created', now, 'paused', 0, 'fired', 0, 'skipped', 0)
        redis.call('ZADD', P .. 'schedules', now, id)
      end
      if paused ~= '1' then redis.call('ZADD', P .. 'schedq', 0, id) end
    end
  end
  drop_schedules(wf, #list)
  redis.call('HSET', wkey(wf), 'nsched', #list)
end
