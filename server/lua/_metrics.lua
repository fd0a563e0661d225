--- @include "base"
-- Counters of what rarely happens, kept by the one function where each
-- happens (a failed attempt, a retry, a dead letter, an expired lease, a
-- cancel): any script may be the one (an expired lease is applied by
-- whichever script touches it first), and none of them is on a job's
-- claim -> complete path, which server/metrics/tally.py counts in Python.
-- `m:n` holds every fleet-wide counter and histogram count (see
-- metrics_flush.lua); a counter's field is c:<name>.
local function tally(name)
  redis.call('HINCRBY', P .. 'm:n', 'c:' .. name, 1)
end
