-- The basics every script needs: the key prefix and Redis's clock.
--
-- KEYS[1] is the namespace prefix, e.g. "{rota}:". Every key is built from
-- it, so all keys share one hash tag and live in one cluster slot.
--
-- A script may also run as a Redis Function (server/scripts.py: the hot
-- path's, on a real Redis): its helpers are then defined once, when the
-- library loads, not on every call, and state a call keeps for itself is
-- set afresh before each call: every chunk-level local that a call changes
-- is declared on one line ending in `-- per call` (tests/test_scripts.py
-- holds them to it), P is set from the call's key.

local P = KEYS[1]
-- Redis embeds Lua 5.1 (global unpack); fakeredis may run 5.4 via lupa.
local unpack = unpack or table.unpack

-- One clock reading per call: a batch runs several scripts' bodies in one
-- atomic call, and they see one time (and read it once).
local NOW -- per call
local function now_ms()
  if NOW then return NOW end
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  return NOW
end

-- A listener (server/notifier.py) is woken by any message on its channel
-- and then reads what changed, and hears nothing before the call ends: the
-- same message again in one call tells it nothing more (a batch of results
-- of one run sends one, not one per job).
local PUBLISHED = {} -- per call
local function publish_once(channel, message)
  local key = channel .. '\0' .. message
  if PUBLISHED[key] then return end
  PUBLISHED[key] = true
  redis.call('PUBLISH', channel, message)
end

local function split(s, sep)
  local out = {}
  if s == nil or s == false or s == '' then return out end
  for part in string.gmatch(s, '([^' .. sep .. ']+)') do out[#out + 1] = part end
  return out
end

-- What happened that an operator wants in the server log at INFO (a run
-- finished, a job retried or failed for good, a lease expired), one line
-- each; server/scripts.py returns them beside the script's reply, and the
-- process that ran the script logs them, so each is logged once.
local NOTES = {} -- per call
local function note(text) NOTES[#NOTES + 1] = text end

-- Jobs whose needs have all settled and that must be decided (their if:,
-- matrix, expressions) before they run or are skipped: server/scripts.py
-- hands them back beside the reply (run, job, run, job, ...), and the
-- process that ran the script decides them (server/store/deciding.py).
local DECIDE = {} -- per call

-- Work a call leaves to its end, whatever it returned (one write of what
-- its steps added up): helpers add their function here when they load,
-- and server/scripts.py runs each after the script's body.
local AT_END = {}

-- Runs deleted in this call (_defs.lua): nothing left to the call's end
-- writes to them.
local PURGED = {} -- per call

-- Scores above 2^31 must not go through tostring (it rounds to 14 digits).
local function num(n) return string.format('%.0f', n) end

