//! A hash in the serialization `DUMP` produces and `RESTORE` takes, so that a new session
//! is stored, whole and with its TTL, by one plain command.
//!
//! The format is the value's RDB encoding, then the RDB version it is written in (two bytes,
//! little-endian), then a CRC-64 of everything before (eight bytes, little-endian). Redis
//! takes any version up to its own, so a hash is written in the oldest encoding that every
//! supported server reads: type 4 (a plain hash: a field count, then each field and value as
//! a length-prefixed string) at RDB version 9 (Redis 5 and later); Redis turns it into its
//! compact encoding as it loads it. Redis checks the CRC and the structure before it
//! stores anything, so a payload it cannot read is refused, never half-stored.

/// `RDB_TYPE_HASH`: a field count, then field and value strings in turn.
const TYPE_HASH: u8 = 4;
/// The RDB version the payload claims (Redis 5.0's).
const RDB_VERSION: u16 = 9;

/// The CRC-64 that Redis checks payloads with (Jones polynomial, bits reflected, no final
/// xor): the `crc` crate's `CRC_64_REDIS`, table-driven.
const CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

fn crc64(bytes: &[u8]) -> u64 {
    CRC64.checksum(bytes)
}

/// RDB's length encoding: 6 bits, 14 bits, or a marker and 32 or 64 bits, big-endian.
fn length(out: &mut Vec<u8>, len: usize) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.extend_from_slice(&[0x40 | (len >> 8) as u8, len as u8]);
    } else if let Ok(len) = u32::try_from(len) {
        out.push(0x80);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    length(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// The payload of a hash holding `fields` (each name once).
pub(crate) fn hash(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    let size: usize = fields.iter().map(|(n, v)| n.len() + v.len() + 10).sum();
    let mut out = Vec::with_capacity(size + 16);
    out.push(TYPE_HASH);
    length(&mut out, fields.len());
    for (name, value) in fields {
        string(&mut out, name);
        string(&mut out, value);
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check value of this CRC-64 variant (the one in Redis's own `crc64` test).
    #[test]
    fn crc_matches_the_reference_value() {
        assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
        assert_eq!(crc64(b""), 0);
    }

    /// The table-driven CRC-64 written out by hand before the `crc` crate was used, kept as
    /// the reference the crate's must equal.
    fn crc64_by_hand(bytes: &[u8]) -> u64 {
        /// 0xad93d23594c935a9, bit-reversed.
        const POLY: u64 = 0x95ac_9329_ac4b_c9b5;
        let mut table = [0u64; 256];
        for (i, entry) in table.iter_mut().enumerate() {
            let mut crc = i as u64;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ POLY
                } else {
                    crc >> 1
                };
            }
            *entry = crc;
        }
        bytes.iter().fold(0, |crc, &byte| {
            table[((crc ^ u64::from(byte)) & 0xff) as usize] ^ (crc >> 8)
        })
    }

    /// The crate's CRC-64 equals the one Rondo computed by hand, on payloads of every
    /// length up to 300 bytes and on a real session payload.
    #[test]
    fn crate_crc_equals_the_hand_written_one() {
        let mut bytes = Vec::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..300 {
            assert_eq!(crc64(&bytes), crc64_by_hand(&bytes), "length {len}");
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.push(x as u8);
        }
        let payload = hash(&[(b"_v", b"1"), (b"d:user", b"\xa3ann")]);
        let body = &payload[..payload.len() - 8];
        assert_eq!(crc64(body), crc64_by_hand(body));
    }

    #[test]
    fn lengths_use_the_shortest_encoding() {
        let encoded = |len| {
            let mut out = Vec::new();
            length(&mut out, len);
            out
        };
        assert_eq!(encoded(0), [0]);
        assert_eq!(encoded(63), [63]);
        assert_eq!(encoded(64), [0x40, 64]);
        assert_eq!(encoded(16_383), [0x7f, 0xff]);
        assert_eq!(encoded(16_384), [0x80, 0, 0, 0x40, 0]);
        assert_eq!(encoded(70_000), [0x80, 0, 1, 0x11, 0x70]);
    }

    #[test]
    fn a_hash_is_type_count_pairs_version_crc() {
        let payload = hash(&[(b"_v", b"1"), (b"d:n", b"\x07")]);
        let body = [
            4, 2, 2, b'_', b'v', 1, b'1', 3, b'd', b':', b'n', 1, 7, 9, 0,
        ];
        assert_eq!(&payload[..body.len()], body);
        assert_eq!(payload[body.len()..], crc64(&body).to_le_bytes());
    }
}
