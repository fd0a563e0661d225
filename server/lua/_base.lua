-- The basics every script needs: the key prefix and Redis's clock.
--
-- KEYS[1] is the namespace prefix, e.g. "{rota}:". Every key is built from
-- it, so all keys share one hash tag and live in one cluster slot.

local P = KEYS[1]
-- Redis embeds Lua 5.1 (global unpack); fakeredis may run 5.4 via lupa.
local unpack = unpack or table.unpack

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function split(s, sep)
  local out = {}
  if s == nil or s == false or s == '' then return out end
  for part in string.gmatch(s, '([^' .. sep .. ']+)') do out[#out + 1] = part end
  return out
end

-- Scores above 2^31 must not go through tostring (it rounds to 14 digits).
local function num(n) return string.format('%.0f', n) end

