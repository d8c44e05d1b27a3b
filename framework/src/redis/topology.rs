//! A Redis Cluster's shape, as far as a connection of one's own needs it: which primary
//! serves each hash slot. The pool's cluster connection routes commands by itself; the
//! connections Rondo keeps per primary (client-side caching, sharded pub/sub) are raw ones,
//! so they look the owner of a key up here.

use redis::Value;

use super::{AnyConn, PoolError, RedisPool};

/// The number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// The hash slot of `key`: CRC16/XMODEM of its hash tag (the part between the first `{` and
/// the next `}`, when not empty) or of the whole key, modulo [`SLOTS`], as Redis computes it.
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key).unwrap_or(key)) % SLOTS
}

fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|b| *b == b'{')?;
    let len = key[open + 1..].iter().position(|b| *b == b'}')?;
    let tag = &key[open + 1..open + 1 + len];
    (!tag.is_empty()).then_some(tag)
}

/// CRC16/XMODEM (polynomial 0x1021, initial value 0), as Redis' `crc16.c`, a byte at a time.
fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, byte| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ byte)]
    })
}

/// The CRC of each byte value, computed at compile time.
const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = (byte as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
};

/// One shard: a primary, its replicas, and the slot ranges it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// The primary's address, as the cluster announces it.
    pub primary: (String, u16),
    /// The replicas' addresses.
    pub replicas: Vec<(String, u16)>,
    /// Inclusive slot ranges.
    pub slots: Vec<(u16, u16)>,
}

/// Every shard of a cluster, and which serves each slot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology {
    /// The shards, ordered by their primary's address.
    pub shards: Vec<Shard>,
}

impl Topology {
    /// Asks the cluster behind `pool` (`CLUSTER SLOTS`).
    ///
    /// # Errors
    ///
    /// No connection, no answer in time, or an answer that is not a slot map (the pool is
    /// not a cluster's).
    pub async fn fetch(pool: &RedisPool) -> Result<Self, PoolError> {
        let unavailable = |message: String| PoolError::Unavailable {
            pool: pool.config().name.clone(),
            message,
        };
        let mut conn = pool.conn().await?;
        let reply: Value = conn
            .run(|mut c: AnyConn| async move {
                redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut c).await
            })
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        Self::parse(&reply).ok_or_else(|| unavailable("CLUSTER SLOTS: unexpected answer".into()))
    }

    /// Reads a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id, ..], replicas ..], ..]`.
    pub fn parse(reply: &Value) -> Option<Self> {
        let Value::Array(ranges) = reply else {
            return None;
        };
        let mut shards: Vec<Shard> = Vec::new();
        for range in ranges {
            let Value::Array(fields) = range else {
                return None;
            };
            let [start, end, primary, replicas @ ..] = fields.as_slice() else {
                return None;
            };
            let slot = |v: &Value| match v {
                Value::Int(n) => u16::try_from(*n).ok().filter(|n| *n < SLOTS),
                _ => None,
            };
            let (start, end) = (slot(start)?, slot(end)?);
            let primary = node(primary)?;
            let replicas = replicas.iter().map(node).collect::<Option<Vec<_>>>()?;
            match shards.iter_mut().find(|s| s.primary == primary) {
                Some(shard) => shard.slots.push((start, end)),
                None => shards.push(Shard {
                    primary,
                    replicas,
                    slots: vec![(start, end)],
                }),
            }
        }
        shards.sort_by(|a, b| a.primary.cmp(&b.primary));
        for shard in &mut shards {
            shard.slots.sort_unstable();
            shard.replicas.sort();
        }
        Some(Self { shards })
    }

    /// The shard serving `slot`, if any does (a cluster may leave slots uncovered).
    pub fn shard_of(&self, slot: u16) -> Option<&Shard> {
        self.shards.iter().find(|s| {
            s.slots
                .iter()
                .any(|(start, end)| (*start..=*end).contains(&slot))
        })
    }

    /// For each slot, the index in `shards` of the shard serving it (`u16::MAX`: none).
    pub fn slot_table(&self) -> Vec<u16> {
        let mut table = vec![u16::MAX; usize::from(SLOTS)];
        for (index, shard) in self.shards.iter().enumerate() {
            let index = u16::try_from(index).unwrap_or(u16::MAX);
            for (start, end) in &shard.slots {
                for slot in *start..=*end {
                    table[usize::from(slot)] = index;
                }
            }
        }
        table
    }
}

/// `[host, port, ..]` of a `CLUSTER SLOTS` node entry.
fn node(value: &Value) -> Option<(String, u16)> {
    let Value::Array(fields) = value else {
        return None;
    };
    let host = match fields.first()? {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
        Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    let port = match fields.get(1)? {
        Value::Int(n) => u16::try_from(*n).ok()?,
        _ => return None,
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from CLUSTER KEYSLOT and the Redis Cluster specification.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    }

    fn entry(start: i64, end: i64, ports: &[i64]) -> Value {
        let mut fields = vec![Value::Int(start), Value::Int(end)];
        for port in ports {
            fields.push(Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(*port),
                Value::BulkString(b"id".to_vec()),
            ]));
        }
        Value::Array(fields)
    }

    #[test]
    fn cluster_slots_is_read() {
        let reply = Value::Array(vec![
            entry(0, 5460, &[7001, 7004]),
            entry(10923, 16383, &[7003, 7006]),
            entry(5461, 10922, &[7002, 7005]),
            entry(100, 100, &[7001]),
        ]);
        let topology = Topology::parse(&reply).expect("parsed");
        assert_eq!(topology.shards.len(), 3);
        assert_eq!(topology.shards[0].primary, ("127.0.0.1".into(), 7001));
        assert_eq!(
            topology.shards[0].replicas,
            vec![("127.0.0.1".into(), 7004)]
        );
        assert_eq!(topology.shards[0].slots, vec![(0, 5460), (100, 100)]);
        assert_eq!(topology.shard_of(12000).map(|s| s.primary.1), Some(7003));
        let table = topology.slot_table();
        assert_eq!(table[0], 0);
        assert_eq!(table[5461], 1);
        assert_eq!(table[16383], 2);
        assert!(Topology::parse(&Value::Array(vec![Value::Int(1)])).is_none());
        assert!(Topology::parse(&Value::Nil).is_none());
    }
}
