--- @include "base"
-- What the claims of one call have learned already: claim_many and results
-- run claim.lua's body once per job, and these do not change between them.

-- Worker ids checked (and registered) for a caller ("worker\0caller").
local CLAIMANTS = {} -- per call

-- A run's fields as a claim reads them (RUN_FIELDS in claim.lua), by run id;
-- a batch's jobs are mostly of one run. Its `started` is kept up to date.
local CLAIMED_RUNS = {} -- per call
