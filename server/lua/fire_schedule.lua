--- @include "runs"
--- @include "schedules"
-- Claims a schedule's due ticks and starts their runs, in one step, if the
-- schedule is still as the scheduler read it: any number of schedulers
-- (one per server replica) may compute the same ticks, and only the first
-- to call this fires them; the others get 'taken'.
-- ARGV: schedule id, spec and last as read (see _schedules.lua), the new
--   last (the newest due tick, fired or not), the next tick, nfire, then
--   per tick to fire: its time (ms), a run id; then the inputs JSON (the
--   declared defaults), retention secs, and the definition version the
--   inputs were computed for; then the most new runs a paused workflow
--   holds, and per tick to fire, in order, its run's concurrency groups as
--   rendered for that version (JSON, see start.lua; '' none).
-- A tick meets its workflow's pause as a start does (see admit_new_run):
-- with new runs refused, or with as many waiting as it holds, it is skipped
-- (counted with the overlap skips); with new runs queued, its run waits.
-- Returns {'ok', run ids started...} | {'taken'} (changed since it was
-- read: another scheduler fired it, or its definition changed) |
-- {'stale'} (a new definition version: compute again) | {'gone'} |
-- {'paused'}.
local id, spec, exp_last = ARGV[1], ARGV[2], ARGV[3]
local newlast, nxt, nfire = ARGV[4], ARGV[5], tonumber(ARGV[6])
local b = 6 + nfire * 2
local inputs, ret, ver = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
local most_held = tonumber(ARGV[b + 4])
local k = skey(id)
local cur, last, paused, wf, lastrun, ov = unpack(redis.call('HMGET', k, 'spec', 'last', 'paused', 'wf', 'lastrun',
  'ov'))
if not cur then return { 'gone' } end
if cur ~= spec or last ~= exp_last then return { 'taken' } end
if paused == '1' then return { 'paused' } end
local w = wkey(wf)
local cver, deleting = unpack(redis.call('HMGET', w, 'ver', 'deleting'))
if not cver or deleting == '1' then return { 'gone' } end
if cver ~= ver then return { 'stale' } end
local now = now_ms()
local started, skipped = { 'ok' }, 0
for i = 1, nfire do
  local tick, run = ARGV[5 + i * 2], ARGV[6 + i * 2]
  local control = ARGV[b + 4 + i] or ''
  control = control ~= '' and cjson.decode(control) or {}
  local prior = (lastrun and lastrun ~= '') and redis.call('HGET', rkey(lastrun), 'state') or nil
  local refused = admit_new_run(wf, control, most_held)
  if ov == 'skip' and (prior == 'active' or prior == 'delayed') then
    -- overlap: skip, as Temporal's default: the previous run is still going
    skipped = skipped + 1
    note(string.format('schedule %s: tick %s skipped, run %s still going (overlap: skip)', id, tick, lastrun))
  elseif refused then
    skipped = skipped + 1
    note(string.format('schedule %s: tick %s skipped: %s', id, tick, refusal_reason(wf, refused)))
  else
    local n = redis.call('HINCRBY', w, 'runs', 1)
    create_run(run, wf, ver, n, 'cron', inputs, '{}', redis.call('INCR', P .. 'runseq'), ret, now, false, control)
    redis.call('HSET', rkey(run), 'sched', id, 'sat', tick)
    start_new_run(run, wf, control, now)
    redis.call('HSET', k, 'ltick', tick)
    lastrun = run
    started[#started + 1] = run
  end
end
redis.call('HSET', k, 'last', newlast, 'next', nxt, 'lastrun', lastrun or '')
redis.call('HINCRBY', k, 'fired', #started - 1)
redis.call('HINCRBY', k, 'skipped', skipped)
redis.call('ZADD', P .. 'schedq', nxt, id)
return started
