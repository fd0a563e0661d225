--- @include "base"
-- A page of a stream (a job's log, a run's events), bounded in bytes as well
-- as entries, so no read holds more than a page whatever the entries' sizes
-- (a read only: it changes nothing). ARGV: key (after the prefix), 'after' |
-- 'before', cursor (exclusive; '' for the stream's start, or its end when
-- reading before), max bytes, max entries, entries per XRANGE step (what
-- one step holds in Lua's memory; see STREAM_SCAN_BYTES). An entry's bytes
-- are its field values' lengths. A page holds at least one entry, whatever
-- its size, and stops before one that would take it past max bytes.
-- Returns {more, {id, fields}, ...}, oldest first either way; `more` is 1
-- when entries remain beyond the page, in its direction.
local key, dir, cursor = P .. ARGV[1], ARGV[2], ARGV[3]
local max_bytes, max_n, step = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local forward = dir == 'after'
local from = cursor ~= '' and ('(' .. cursor) or (forward and '-' or '+')

local function range(start, count)
  local got
  if forward then
    got = redis.pcall('XRANGE', key, start, '+', 'COUNT', count)
  else
    got = redis.pcall('XREVRANGE', key, start, '-', 'COUNT', count)
  end
  -- an exclusive bound beyond the last possible id: nothing there
  if type(got) ~= 'table' or got.err then return {} end
  return got
end

local out, used, more, full = {}, 0, 0, false
while not full do
  local want = math.min(step, max_n - #out)
  local batch = range(from, want)
  for _, e in ipairs(batch) do
    local size = 0
    for i = 2, #e[2], 2 do size = size + #e[2][i] end
    if #out > 0 and used + size > max_bytes then
      more, full = 1, true
      break
    end
    out[#out + 1] = e
    used = used + size
    from = '(' .. e[1]
    if #out >= max_n then
      full = true
      break
    end
  end
  if #batch < want then break end
end
if more == 0 and #out >= max_n and #range(from, 1) > 0 then more = 1 end
local reply = { more }
if forward then
  for i = 1, #out do reply[i + 1] = out[i] end
else
  for i = #out, 1, -1 do reply[#reply + 1] = out[i] end
end
return reply
