--- @include "logbudget"
-- What a running job reports of itself (the in-job SDK), each call one
-- run of this script: ARGV lease_id, caller (see live_lease), op, then the
-- op's arguments. Every change is also a run event.
-- Returns {'ok', n} | {'lost'} | {'forbidden'} | {'cancelled'} |
-- {'too_large', what, limit} | {'too_many', what, limit} | {'log_full', limit}.
local lid, caller, op = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
local lease, refusal = live_lease(lid, now, caller)
if not lease then return lease_gone(lid, caller, refusal) end
local run, job, att = lease.run, lease.job, tonumber(lease.att)
-- A cancelled job may still log what it prints while it stops; nothing else.
if lease.st ~= 'running' and op ~= 'log' then return { lease.st } end
local k = jkey(run, job)

local function note_event(kind, detail, level)
  event(run, job, kind, lease.st, att, now, detail, nil, level)
  -- 'info': nothing that changes the job's status (a heartbeat's long-poll
  -- and a log tail need not look)
  redis.call('PUBLISH', jobchan(run, job), kind == 'log' and 'log' or 'info')
end

if op == 'progress' then
  -- ARGV: percent, step name, step index, metadata JSON ('' for unset)
  local pct, sname, sidx, meta = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
  if pct ~= '' then redis.call('HSET', k, 'prog', pct) end
  if sname ~= '' then redis.call('HSET', k, 'sname', sname) end
  if sidx ~= '' then redis.call('HSET', k, 'sidx', sidx) end
  if meta ~= '' then redis.call('HSET', k, 'pmeta', meta) end
  note_event('progress', (pct ~= '' and (pct .. '%') or '') .. (sname ~= '' and (' ' .. sname) or ''))
  return { 'ok', 1 }
end

if op == 'log' then
  -- ARGV: maxlen, the attempt's log budget in bytes, the progress percent
  -- of the last entry that gave one ('' for none), the most severe level
  -- among the entries (the event's), then per entry: the
  -- chunk's JSON after its opening brace (data, stream, level, ...),
  -- message (for the event). The chunk gets the lease's workflow and job,
  -- the server's time, and a sequence of the job's entries (0, 1, ...
  -- across its attempts; the worker's output chunks number themselves).
  -- Entries share the attempt's budget with its output (see
  -- _logbudget.lua and logs.lua): the call that fills it keeps those that
  -- fit, {'ok', kept, dropped}; after it, {'log_full', limit}, changing
  -- nothing (the progress it carries included).
  local maxlen, limit, pct, level = ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7]
  local n = (#ARGV - 7) / 2
  local head = '{"workflow_id":' .. cjson.encode(lease.wf) .. ',"job_id":' .. cjson.encode(job) .. ',"sequence":'
  local tail = ',"timestamp_ms":' .. num(now) .. ','
  local first = tonumber(jget(k, 'eseq')) or 0
  local spent, kept = log_spent(run, job, att), 0
  if n > 0 and log_closed(run, job, att) then return { 'log_full', limit } end
  for i = 0, n - 1 do
    local chunk = head .. num(first + i) .. tail .. ARGV[8 + 2 * i]
    if spent + #chunk > limit then break end
    redis.call('XADD', logkey(run, job), 'MAXLEN', '~', maxlen, '*', 'c', chunk, 'a', att)
    spent = spent + #chunk
    kept = kept + 1
  end
  if pct ~= '' then redis.call('HSET', k, 'prog', pct) end
  if kept > 0 then
    redis.call('HSET', k, 'eseq', first + kept)
    log_spend(run, job, att, spent)
    note_event('log', kept == 1 and string.sub(ARGV[9], 1, 200) or (kept .. ' entries'), level)
  end
  if kept < n then log_cut(run, job, lease.wf, att, 0, now, limit, maxlen) end
  return { 'ok', kept, n - kept }
end

-- Saved on the attempt (the job's next attempt gets the latest in its
-- claim) and kept in the job's history: every checkpoint, numbered in its
-- run (`sequence`) and saying what saved it (`source`: checkpoint | step),
-- the oldest dropped past `max_n` kept or `max_bytes` of them.
local function save_checkpoint(data, source, max_n, max_bytes)
  local seq = redis.call('HINCRBY', rkey(run), 'ckseq', 1)
  local rec = '{"sequence":' .. seq .. ',"job_id":' .. cjson.encode(job) .. ',"attempt":' .. att
    .. ',"source":"' .. source .. '","saved_at_ms":' .. num(now) .. ',"data":' .. data .. '}'
  redis.call('HSET', P .. 'ckpt:' .. run .. ':' .. job, att, rec)
  redis.call('HSET', k, 'ckat', att)
  local hk = P .. 'ckpts:' .. run .. ':' .. job
  local n = redis.call('RPUSH', hk, rec)
  local bytes = redis.call('HINCRBY', k, 'ckbytes', #rec)
  while n > 1 and (n > max_n or bytes > max_bytes) do
    bytes = redis.call('HINCRBY', k, 'ckbytes', -#redis.call('LPOP', hk))
    n = n - 1
  end
end

if op == 'step' then
  -- ARGV: step id, state (running|completed|failed|skipped|progress), checkpoint
  -- JSON ('' for none: a step's artifacts or checkpoint_data, Restep's
  -- automatic checkpoint), the checkpoint history's bounds (count, bytes),
  -- then prop, value pairs (values as sent: JSON for
  -- structured ones). A step is fields "<attempt>:<step>:<prop>" of one
  -- hash per job, so nothing sent is decoded and encoded again here.
  local id, state, ckpt = ARGV[4], ARGV[5], ARGV[6]
  local sk = P .. 'steps:' .. run .. ':' .. job
  local f = att .. ':' .. id .. ':'
  for i = 9, #ARGV, 2 do redis.call('HSET', sk, f .. ARGV[i], ARGV[i + 1]) end
  if not redis.call('HGET', sk, f .. 'started_at') then redis.call('HSET', sk, f .. 'started_at', now) end
  if state == 'completed' or state == 'failed' or state == 'skipped' then
    redis.call('HSET', sk, f .. 'status', state, f .. 'finished_at', now)
  elseif state == 'running' or not redis.call('HGET', sk, f .. 'status') then
    redis.call('HSET', sk, f .. 'status', 'running')
  end
  if state == 'running' then
    -- The current step is a step's name (rota's worker gives one); a bare
    -- id (Restep's step UUIDs) leaves what `progress` said standing.
    local sname = redis.call('HGET', sk, f .. 'name')
    if sname then redis.call('HSET', k, 'sname', sname) end
    if tonumber(id) then redis.call('HSET', k, 'sidx', id) end
  end
  if ckpt ~= '' then save_checkpoint(ckpt, 'step', tonumber(ARGV[7]), tonumber(ARGV[8])) end
  redis.call('HSET', k, 'hsteps', 1)
  note_event('step', 'step ' .. id .. ' ' .. state)
  return { 'ok', 1 }
end

if op == 'checkpoint' then
  -- ARGV: the checkpoint's data (JSON), the history's bounds (count, bytes)
  save_checkpoint(ARGV[4], 'checkpoint', tonumber(ARGV[5]), tonumber(ARGV[6]))
  note_event('checkpoint', #ARGV[4] .. ' bytes')
  return { 'ok', 1 }
end

if op == 'state_set' or op == 'state_del' then
  -- ARGV: key, value JSON (set), max keys per run
  local sk = P .. 'state:' .. run
  if op == 'state_del' then
    note_event('state', 'deleted ' .. ARGV[4])
    return { 'ok', redis.call('HDEL', sk, ARGV[4]) }
  end
  local max = tonumber(ARGV[6])
  if redis.call('HEXISTS', sk, ARGV[4]) == 0 and redis.call('HLEN', sk) >= max then
    return { 'too_many', 'state keys in a run', max }
  end
  redis.call('HSET', sk, ARGV[4], ARGV[5])
  note_event('state', 'set ' .. ARGV[4])
  return { 'ok', 1 }
end

if op == 'annotate' then
  -- ARGV: max keys per job, max keys per run, then key, value pairs. The
  -- run's metadata (rmeta) holds its jobs' annotations merged, the latest
  -- value of a key winning, so a run is found by them without its jobs.
  local ak, mk = P .. 'ann:' .. run .. ':' .. job, P .. 'rmeta:' .. run
  local max, rmax = tonumber(ARGV[4]), tonumber(ARGV[5])
  local n, rn = 0, 0
  for i = 6, #ARGV, 2 do
    if redis.call('HEXISTS', ak, ARGV[i]) == 0 then n = n + 1 end
    if redis.call('HEXISTS', mk, ARGV[i]) == 0 then rn = rn + 1 end
  end
  if redis.call('HLEN', ak) + n > max then return { 'too_many', 'annotations on a job', max } end
  if redis.call('HLEN', mk) + rn > rmax then return { 'too_many', 'annotation keys in a run', rmax } end
  for i = 6, #ARGV, 2 do
    redis.call('HSET', ak, ARGV[i], ARGV[i + 1])
    redis.call('HSET', mk, ARGV[i], ARGV[i + 1])
  end
  redis.call('HSET', k, 'hann', 1)
  note_event('annotate', ((#ARGV - 5) / 2) .. ' annotation(s)')
  return { 'ok', (#ARGV - 5) / 2 }
end

if op == 'note' then
  -- ARGV: context, style, markdown, max notes per run
  local nk = P .. 'notes:' .. run
  local context = ARGV[4]
  local prior = redis.call('HGET', nk, context)
  local seq
  if prior then
    seq = cjson.decode(prior).seq  -- a replaced note keeps its place
  else
    seq = redis.call('HLEN', nk) + 1
    if seq > tonumber(ARGV[7]) then return { 'too_many', 'annotations on a run', tonumber(ARGV[7]) } end
  end
  -- seq: notes show in the order their contexts were first written (a
  -- large hash's fields come back in no order, and two notes may share a ms)
  redis.call('HSET', nk, context, cjson.encode({ context = context, style = ARGV[5], markdown = ARGV[6],
    job_id = job, at_ms = now, seq = seq }))
  redis.call('HSET', rkey(run), 'hnotes', 1)
  note_event('annotate', 'note ' .. context)
  return { 'ok', 1 }
end

if op == 'output' then
  -- ARGV: max bytes, then key, value pairs merged into the job's outputs
  local max = tonumber(ARGV[4])
  local raw = jget(k, 'out')
  local outs = (raw and raw ~= '') and cjson.decode(raw) or {}
  for i = 5, #ARGV, 2 do outs[ARGV[i]] = ARGV[i + 1] end
  local size = 0
  for key, value in pairs(outs) do size = size + #key + #value end
  if size > max then return { 'too_large', 'outputs', max } end
  -- cjson encodes an empty table as {}: outputs are never empty here
  redis.call('HSET', k, 'out', cjson.encode(outs), 'lout', 1)
  note_event('output', ((#ARGV - 4) / 2) .. ' output(s)')
  return { 'ok', (#ARGV - 4) / 2 }
end

if op == 'soutput' then
  -- ARGV: key, value JSON, schema JSON ('' for none), max per run. A
  -- structured output of the run (Strait's), upserted by its key.
  local ok_ = P .. 'souts:' .. run
  local key, max = ARGV[4], tonumber(ARGV[7])
  local prior = redis.call('HGET', ok_, key)
  if not prior and redis.call('HLEN', ok_) >= max then return { 'too_many', 'structured outputs in a run', max } end
  local created = prior and cjson.decode(prior).created_at_ms or now
  redis.call('HSET', ok_, key, '{"output_key":' .. cjson.encode(key) .. ',"job_id":' .. cjson.encode(job)
    .. ',"attempt":' .. att .. ',"created_at_ms":' .. num(created) .. ',"updated_at_ms":' .. num(now)
    .. ',"schema":' .. (ARGV[6] ~= '' and ARGV[6] or 'null') .. ',"value":' .. ARGV[5] .. '}')
  note_event('output', 'structured output ' .. key)
  return { 'ok', 1 }
end

if op == 'resources' then
  -- ARGV: cpu percent, memory bytes, sample JSON
  local cpu, mem = tonumber(ARGV[4]), tonumber(ARGV[5])
  local pcpu, pmem = unpack(jmget(k, 'pcpu', 'pmem'))
  if cpu and cpu > (tonumber(pcpu) or -1) then redis.call('HSET', k, 'pcpu', ARGV[4]) end
  if mem and mem > (tonumber(pmem) or -1) then redis.call('HSET', k, 'pmem', ARGV[5]) end
  redis.call('HSET', k, 'res', ARGV[6], 'resat', now)
  note_event('resources', (cpu and (ARGV[4] .. '% cpu ') or '') .. (mem and (ARGV[5] .. ' bytes') or ''))
  return { 'ok', 1 }
end

if op == 'typed' then
  -- ARGV: event type (usage | tool_call | stream), body JSON (an object)
  event(run, job, ARGV[4], lease.st, att, now, '', ARGV[5])
  return { 'ok', 1 }
end

return redis.error_reply('unknown op ' .. op)
