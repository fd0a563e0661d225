--- @include "control"
-- ARGV: run id, who asked (a token id, or ''). Pauses a run: its queued
-- jobs leave their queues and no job of it goes to a worker until it is
-- resumed; running jobs go on and finish (and its waits, backoffs and
-- concurrency-group places stand). A delayed run may be paused too: once
-- its time comes, its jobs wait for the resume. Returns {'ok', jobs taken
-- off their queues} | {'noop', 'paused' | 'finished'} | {'not_found'}.
local run, who = ARGV[1], ARGV[2]
local now = now_ms()
local r = rkey(run)
local state, paused, jobs = unpack(redis.call('HMGET', r, 'state', 'paused', 'jobs'))
if not state then return { 'not_found' } end
if state ~= 'active' and state ~= 'delayed' then return { 'noop', 'finished' } end
if paused == '1' then return { 'noop', 'paused' } end
redis.call('HSET', r, 'paused', 1, 'paused_ms', now)
local held = 0
for _, job in ipairs(split(jobs, ',')) do
  local st, lk = unpack(jmget(jkey(run, job), 'st', 'lk'))
  if st == 'ready' then
    unready(lk, member(run, job))
    hold_job(run, job, 'ready', 'run')
    held = held + 1
  end
end
local detail = 'paused' .. (who ~= '' and (' by ' .. who) or '') .. ': no job of it goes to a worker until it resumes'
event(run, '', 'pause', 'paused', 0, now, detail)
control_event('run', run, 'paused', who, now, held .. ' queued job(s) held')
note(string.format('run %s %s', run, detail))
return { 'ok', held }
