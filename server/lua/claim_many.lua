--- @use "claim"
-- Several claims in one call, each claim.lua's own: up to one job per lease
-- id given, stopping at the first claim that finds nothing (once the leases
-- of a first try, when this is one sent again, have all been looked at).
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
local out, leased, looked = { 0 }, {}, 0
for i = 7, #ARGV do
  local n = i - 6
  looked = n
  local got = claim_script({ worker, labels, ttl, ARGV[i], caller, claim_id, cap, '1', prior[n] or '' })
  if got[1] < 0 then return { got[1] } end
  if got[1] == 1 then
    out[#out + 1] = got
    leased[#leased + 1] = got[3]
    out[1] = #leased
  elseif n >= #prior then
    break -- nothing to take, and no lease of a first try left to hand back
  end
end
-- a first try's leases this send did not ask for stay in the record (one
-- sent again later for more gets them back)
for m = looked + 1, #prior do leased[#leased + 1] = prior[m] end
if claim_id ~= '' and #leased > 0 then redis.call('SET', key, table.concat(leased, ','), 'EX', ttl) end
return out
