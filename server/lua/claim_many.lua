--- @use "claim"
-- Several claims in one call, each claim.lua's own: up to one job per lease
-- id given, stopping at the first claim that finds nothing.
-- ARGV: worker_id, labels, ttl_secs, caller, claim_id ('' for none), the
-- most worker ids a token may hold, then one lease id per job wanted.
-- A claim_id's record lists the batch's lease ids ("a,b,c"; a plain claim's
-- has one): a batch re-sent after a lost reply gets back, in order, every
-- lease of its first try that is still live, and claims afresh for the
-- rest. One read and one write of it a batch, not one a job.
-- Returns {status} when the worker id is refused ({-1} taken, {-2} over
-- the token's cap), else {n, claim reply 1, ..., claim reply n} (n may be 0).
local worker, labels, ttl, caller, claim_id, cap = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local key = P .. 'claimid:' .. worker .. ':' .. claim_id
local prior = claim_id ~= '' and split(redis.call('GET', key), ',') or {}
local out, leased = { 0 }, {}
for i = 7, #ARGV do
  local n = i - 6
  local got = claim_script({ worker, labels, ttl, ARGV[i], caller, claim_id, cap, '1', prior[n] or '' })
  if got[1] < 0 then return { got[1] } end
  if got[1] == 0 then break end
  out[1] = n
  out[#out + 1] = got
  leased[n] = got[3]
end
if claim_id ~= '' and #leased > 0 then redis.call('SET', key, table.concat(leased, ','), 'EX', ttl) end
return out
