--- @include "leases"
-- A job attempt's log budget (LOG_MAX_BYTES): the bytes of log entries it
-- may add, counted as stored (each chunk's JSON), kept in the job's hash:
-- lbb bytes spent by attempt lba, and lbx the attempt whose marker line is
-- written. Trimming (LOG_MAX_CHUNKS) gives nothing back: the budget bounds
-- what one attempt may write, whatever is left of it later.

local function log_spent(run, job, att)
  local a, b = unpack(jmget(jkey(run, job), 'lba', 'lbb'))
  if tonumber(a) ~= tonumber(att) then return 0 end
  return tonumber(b) or 0
end

-- Whether the attempt's log was cut (its marker written): nothing new goes in.
local function log_closed(run, job, att)
  return tonumber(jget(jkey(run, job), 'lbx')) == tonumber(att)
end

local function log_spend(run, job, att, spent)
  redis.call('HSET', jkey(run, job), 'lba', att, 'lbb', spent)
end

-- Where an attempt's log was cut, once, by the request that filled it: one
-- line saying so (GitLab's "Job's log exceeded limit"), on a line of its
-- own. The budget counts as spent from then on, so no later, smaller chunk
-- slips in after the line, and a later request with anything new is
-- refused whole (413), changing nothing. The line is the budget's own
-- word, the one entry it does not count.
local function log_cut(run, job, wf, att, seq, now, limit, maxlen)
  local k, key = jkey(run, job), logkey(run, job)
  if log_closed(run, job, att) then return end
  redis.call('HSET', k, 'lbx', att, 'lba', att, 'lbb', limit)
  local text = '[rota: job log exceeded LOG_MAX_BYTES (' .. num(limit) .. ' bytes); further output dropped]\n'
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1]
  if last then
    local fields = {}
    for i = 1, #last[2], 2 do fields[last[2][i]] = last[2][i + 1] end
    local ok, chunk = pcall(cjson.decode, fields.c or '')
    if ok and type(chunk) == 'table' and tonumber(fields.a) == tonumber(att) and chunk.stream ~= 'event'
        and type(chunk.data) == 'string' and chunk.data ~= '' and string.sub(chunk.data, -1) ~= '\n' then
      text = '\n' .. text
    end
  end
  -- built by hand: cjson would write the time as 1.7e+12
  local c = '{"workflow_id":' .. cjson.encode(wf) .. ',"job_id":' .. cjson.encode(job) .. ',"sequence":'
    .. num(seq) .. ',"data":' .. cjson.encode(text) .. ',"timestamp_ms":' .. num(now) .. ',"stream":"stderr"}'
  redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'c', c, 'a', att)
  redis.call('PUBLISH', jobchan(run, job), 'log')
  note(string.format('job %s/%s attempt %s: log reached LOG_MAX_BYTES (%s bytes); further output dropped',
    run, job, att, num(limit)))
end
