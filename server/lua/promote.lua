-- ARGV: limit. Moves due delayed jobs to their ready queues. Returns the count.
return promote_delayed(now_ms(), tonumber(ARGV[1]))
