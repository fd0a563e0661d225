--- @include "keys"
-- Per-token caps: what one API token (its id; '' with auth off) may keep
-- in Redis. Each count lives beside what it counts and is checked by the
-- script that would add one, so no two requests can both pass a full cap.
--
--   quota:workers:<tok>  set: the worker ids the token holds (worker:<id>
--                        owner; the '' token's when auth is off)
--   quota:oneoffs:<tok>  set: the one-off workflows it created (wf:<wf> otok)
--   quota:idem:<tok>     zset: its stored idempotency keys -> expiry (ms);
--                        expired ones leave it when it is next checked

local function quota_key(what, tok) return P .. 'quota:' .. what .. ':' .. tok end

-- Whether `tok` already holds `cap` members of the set `what`.
local function quota_full(what, tok, cap)
  return redis.call('SCARD', quota_key(what, tok)) >= cap
end

-- Whether `tok` already holds `cap` live idempotency keys, `key` not among them.
local function idem_quota_full(tok, key, now, cap)
  local q = quota_key('idem', tok)
  redis.call('ZREMRANGEBYSCORE', q, '-inf', num(now))
  return not redis.call('ZSCORE', q, key) and redis.call('ZCARD', q) >= cap
end

-- Keeps an idempotency key's answer for `ttl` seconds, counted against `tok`.
local function keep_idem(tok, key, value, ttl, now)
  redis.call('SET', P .. 'idem:' .. key, value, 'EX', ttl)
  local q = quota_key('idem', tok)
  redis.call('ZADD', q, num(now + ttl * 1000), key)
  redis.call('PEXPIRE', q, ttl * 1000) -- the count goes with the token's last key
end

-- A one-off workflow that is deleted, or PUT over (no longer a one-off),
-- stops counting against the token that created it.
local function untrack_oneoff(wf)
  local otok = redis.call('HGET', wkey(wf), 'otok')
  if otok then
    redis.call('SREM', quota_key('oneoffs', otok), wf)
    redis.call('HDEL', wkey(wf), 'otok')
  end
end
