--- @use "claim"
-- Several claims in one call, each claim.lua's own: up to one job per lease
-- id given, stopping at the first claim that finds nothing.
-- ARGV: worker_id, labels, ttl_secs, caller, claim_id ('' for none), the
-- most worker ids a token may hold, then one lease id per job wanted.
-- The claim id of the first job is `claim_id` itself (a claim of one job is
-- the plain claim's), of the n-th `claim_id#n`: a batch re-sent after a
-- lost reply gets back every lease that is still live.
-- Returns {status} when the worker id is refused ({-1} taken, {-2} over
-- the token's cap), else {n, claim reply 1, ..., claim reply n} (n may be 0).
local worker, labels, ttl, caller, claim_id, cap = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local out = { 0 }
for i = 7, #ARGV do
  local n = i - 6
  local cid = claim_id
  if claim_id ~= '' and n > 1 then cid = claim_id .. '#' .. n end
  local got = claim_script({ worker, labels, ttl, ARGV[i], caller, cid, cap })
  if got[1] < 0 then return { got[1] } end
  if got[1] == 0 then break end
  out[1] = n
  out[#out + 1] = got
end
return out
