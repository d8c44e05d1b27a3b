//! The Lua scripts behind [`RedisLinks`](super::RedisLinks).
//!
//! Each operation that reads and then writes is one script, so Redis runs it atomically:
//! no other client's command can come between the check for a free place and taking it,
//! on one server or on many. Time is Redis' own (`TIME`), never the caller's, so servers
//! with skewed clocks agree on when a link opens and closes. Redis 5+ replicates a
//! script's effects rather than the script, so reading the clock before writing is allowed.
//!
//! Layout, for a link with id `ID` under the pool's key prefix `P`:
//!
//! - `P` `links:{ID}`: a hash with `target`, `starts`, `expires`, `max`, `uses`, `revoked`
//!   (`0`/`1`), `purge` (the Unix second the keys expire) and, for a personal invitation,
//!   `participant`;
//! - `P` `links:{ID}:uses`: the set of identities admitted so far.
//!
//! The `{ID}` hash tag puts both keys in one Redis Cluster slot, which a script touching
//! both requires. Whatever the prefix holds, both keys share it and the text up to and
//! including `{ID}`, so their hash tags are the same. Every reply is an array of strings,
//! the first naming the outcome.

/// KEYS: link hash, redeemer set. ARGV: target, starts, expires, max, purge, and the
/// participant if any. Replies `ok`, `past` (it expires before Redis' now) or `exists`.
pub(super) const CREATE: &str = r"
local now = tonumber(redis.call('TIME')[1])
if tonumber(ARGV[3]) < now then return {'past'} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'target', ARGV[1], 'starts', ARGV[2], 'expires', ARGV[3],
  'max', ARGV[4], 'uses', 0, 'revoked', 0, 'purge', ARGV[5])
if ARGV[6] then redis.call('HSET', KEYS[1], 'participant', ARGV[6]) end
redis.call('EXPIREAT', KEYS[1], ARGV[5])
return {'ok'}
";

/// KEYS: link hash, redeemer set. ARGV: the redeemer. Replies, in the order of the rules:
/// `unknown`, `not_for_you`, `revoked`, `not_started` + starts, `expired`, `used_up`, or
/// `redeemed` + target + uses + first time (`1`/`0`).
pub(super) const REDEEM: &str = r"
local f = redis.call('HMGET', KEYS[1],
  'target', 'starts', 'expires', 'max', 'uses', 'revoked', 'participant', 'purge')
if not f[1] then return {'unknown'} end
if f[7] and f[7] ~= ARGV[1] then return {'not_for_you'} end
if f[6] == '1' then return {'revoked'} end
local now = tonumber(redis.call('TIME')[1])
if now < tonumber(f[2]) then return {'not_started', f[2]} end
if now > tonumber(f[3]) then return {'expired'} end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return {'redeemed', f[1], f[5], '0'}
end
if tonumber(f[5]) >= tonumber(f[4]) then return {'used_up'} end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIREAT', KEYS[2], f[8])
local uses = redis.call('HINCRBY', KEYS[1], 'uses', 1)
return {'redeemed', f[1], tostring(uses), '1'}
";

/// KEYS: link hash. Replies `revoked`, or `unknown` when there is no such link.
pub(super) const REVOKE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown'} end
redis.call('HSET', KEYS[1], 'revoked', 1)
return {'revoked'}
";
