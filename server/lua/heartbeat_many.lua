--- @use "heartbeat"
-- A worker's heartbeat for all its leases at once, each heartbeat.lua's own.
-- ARGV: caller, at least this many seconds ('' or 0: none), then the lease
-- ids. Returns one heartbeat reply per lease id, in order.
local caller, min_secs = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV do out[#out + 1] = heartbeat_script({ ARGV[i], caller, min_secs }) end
return out
