--- @use "complete"
--- @use "fail"
--- @use "claim_many"
-- Results of several leases, then the worker's next claim, in one call: a
-- busy worker spends one request per job (BullMQ's moveToFinished with
-- fetchNext). Each result is complete.lua's or fail.lua's own, so replays,
-- fencing and refusals are theirs; the claim is claim_many.lua's.
-- ARGV: strict (1: claim only if every result was taken, as the single
-- complete/fail with `next` answers a refusal with its error alone),
-- the number of results, then each as: kind ('complete' | 'fail'), how many
-- arguments follow, that script's ARGV; then, if a claim follows, claim_many's
-- ARGV (nothing: no claim).
-- Returns {{result reply, ...}, claim_many reply or {}}.
local strict = ARGV[1] == '1'
local n = tonumber(ARGV[2])
local at = 3
local results = {}
local taken = true
for r = 1, n do
  local kind, count = ARGV[at], tonumber(ARGV[at + 1])
  local argv = { unpack(ARGV, at + 2, at + 1 + count) }
  local reply
  if kind == 'complete' then reply = complete_script(argv) else reply = fail_script(argv) end
  results[r] = reply
  taken = taken and (reply[1] == 'ok' or reply[1] == 'replayed')
  at = at + 2 + count
end
local claimed = {}
if ARGV[at] ~= nil and (taken or not strict) then claimed = claim_many_script({ unpack(ARGV, at) }) end
return { results, claimed }
