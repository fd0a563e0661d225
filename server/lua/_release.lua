--- @include "control"
-- The event a job waits for has come (or someone approved it): a gate
-- succeeds, its outputs the payload's strings (or {"payload": the string,
-- or the JSON text});
-- a job that asked to wait runs again, a new attempt that uses no retry,
-- with the payload as its claim's `event`.
local function release_wait(run, job, payload, now, why)
  local k = jkey(run, job)
  local gate, att, base = unpack(jmget(k, 'gate', 'att', 'base'))
  leave_wait(run, job)
  redis.call('HSET', k, 'evpayload', payload)
  if gate and gate ~= '' then
    local ok, decoded = pcall(cjson.decode, payload)
    -- a string payload is itself, not its JSON quotes
    local outputs = cjson.encode({ payload = (ok and type(decoded) == 'string') and decoded or payload })
    if ok and type(decoded) == 'table' then
      local strings = true
      for key, value in pairs(decoded) do
        if type(key) ~= 'string' or type(value) ~= 'string' then strings = false end
      end
      if strings and next(decoded) ~= nil then outputs = payload end
    end
    succeed(run, job, 'eventwait', outputs, now, why)
    return
  end
  -- the attempt that waited does not count against the retry budget
  att = (tonumber(att) or 0) + 1
  redis.call('HSET', k, 'att', att, 'base', (tonumber(base) or 0) + 1)
  clear_attempt(k)
  enqueue(run, job, 'eventwait', now, 0)
  event(run, job, 'job', 'queued', att, now, why)
end
