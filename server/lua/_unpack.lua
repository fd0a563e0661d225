-- unpack for a Redis Function: Redis 7.0 leaves it out of a library's
-- globals (scripts run by EVAL have it). server/scripts.py puts this in
-- place of _base.lua's `local unpack` line in a library; nothing includes
-- it otherwise. Ten values a step: most unpacks here are of a few fields.
local function unpack(t, i, j)
  i = i or 1
  j = j or #t
  local n = j - i + 1
  if n <= 0 then return end
  if n == 1 then return t[i] end
  if n == 2 then return t[i], t[i + 1] end
  if n == 3 then return t[i], t[i + 1], t[i + 2] end
  if n == 4 then return t[i], t[i + 1], t[i + 2], t[i + 3] end
  if n == 5 then return t[i], t[i + 1], t[i + 2], t[i + 3], t[i + 4] end
  if n <= 10 then
    return t[i], t[i + 1], t[i + 2], t[i + 3], t[i + 4], unpack(t, i + 5, j)
  end
  return t[i], t[i + 1], t[i + 2], t[i + 3], t[i + 4], t[i + 5], t[i + 6], t[i + 7], t[i + 8], t[i + 9],
    unpack(t, i + 10, j)
end
