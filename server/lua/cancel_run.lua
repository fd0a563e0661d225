--- @include "control"
-- ARGV: run id. Returns {'ok'} | {'noop'} (finished already) | {'not_found'}.
-- Queued jobs end at once; a running job is marked cancelled and keeps its
-- lease, so its worker learns it from its heartbeat and its last logs are
-- still accepted, while complete/fail get 409. A job not yet started whose
-- if: calls a status function (`if: always()`, `if: cancelled()`) is not
-- cancelled: it is decided once its needs have settled, cancelled()
-- answering true (GitHub's cleanup jobs). A second cancel of a cancelled
-- run cancels those too.
local run = ARGV[1]
local now = now_ms()
local state = redis.call('HGET', rkey(run), 'state')
if not state then return { 'not_found' } end
if state ~= 'active' and state ~= 'delayed' then return { 'noop' } end
-- a delayed run is cancelled before it starts: it goes as any run does, and
-- none of its jobs runs (nothing of it started for an always() to clean up)
cancel_whole_run(run, now, 'run cancelled')
return { 'ok' }
