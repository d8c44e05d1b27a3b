//! The Lua scripts behind [`RoomStore`](super::RoomStore): each reads and then writes the
//! keys of one room (or a host's index) atomically, so no other client's command comes
//! between the check and the change, on one server or many. Every reply is a number or an
//! outcome name.

/// KEYS: room, members. ARGV: title, starts, capacity, host id, host name, expires,
/// created, host member JSON. Replies 1, or 0 when the id is taken.
pub(super) const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'title', ARGV[1], 'starts', ARGV[2], 'capacity', ARGV[3],
  'host', ARGV[4], 'host_name', ARGV[5], 'closed', 0, 'expires', ARGV[6], 'created', ARGV[7])
redis.call('EXPIREAT', KEYS[1], ARGV[6])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], ARGV[4], ARGV[8])
redis.call('EXPIREAT', KEYS[2], ARGV[6])
return 1
";

/// KEYS: room, members, removed. ARGV: member id, member JSON. Replies `joined`, `again`
/// (a member already: nothing changes), `full`, `closed`, `removed` or `unknown`.
pub(super) const JOIN: &str = r"
local r = redis.call('HMGET', KEYS[1], 'closed', 'capacity', 'expires')
if not r[2] then return 'unknown' end
if r[1] == '1' then return 'closed' end
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then return 'removed' end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 'again' end
if redis.call('HLEN', KEYS[2]) > tonumber(r[2]) then return 'full' end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('EXPIREAT', KEYS[2], r[3])
return 'joined'
";

/// KEYS: room, members, removed. ARGV: member id. Replies 1 (was a member), 0 (was not;
/// now barred all the same), -1 (that is the host) or -2 (no such room).
pub(super) const REMOVE: &str = r"
local r = redis.call('HMGET', KEYS[1], 'host', 'expires')
if not r[2] then return -2 end
if r[1] == ARGV[1] then return -1 end
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('EXPIREAT', KEYS[3], r[2])
return redis.call('HDEL', KEYS[2], ARGV[1])
";

/// KEYS: room. Replies 1, or 0 when there is no such room.
pub(super) const CLOSE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'closed', 1)
return 1
";

/// KEYS: chat. ARGV: message JSON, how many to keep, expires.
pub(super) const CHAT: &str = r"
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return 1
";

/// KEYS: a host's index. ARGV: room expiry, room id, now. Adds the room, drops the
/// expired ones, and keeps the key as long as its latest room.
pub(super) const INDEX: &str = r"
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('EXPIREAT', KEYS[1], last[2]) end
return 1
";
