--- @include "base"
-- ARGV: a fresh random key. Every replica signs run tokens with one key,
-- kept in Redis: the first server to start stores it, the rest read it.
redis.call('SET', P .. 'runkey', ARGV[1], 'NX')
return redis.call('GET', P .. 'runkey')
