//! Entry points for the fuzz targets in `fuzz/`, and nothing else: thin wrappers that reach
//! the parsers a client or a corrupted Redis can feed, which are otherwise private. Hidden
//! from the docs and not a stable API.

use http::HeaderMap;
use redis::Value;
use serde::de::DeserializeOwned;

use super::cookie::CookieSettings;
use super::store::{msgpack_values, parse_record, Loaded, Record, StoreError};
use super::{SessionError, SessionId};
use crate::config::Config;

/// The session ids the `Cookie` headers of a request name, in order, as `[session]` of
/// `config` reads them.
pub fn cookie_session_ids(config: &Config, headers: &HeaderMap) -> Vec<SessionId> {
    CookieSettings::from_config(config).read(headers)
}

/// An `HGETALL` answer parsed into a record, as the Redis store does on a load, then checked
/// as the session layer checks every record it loads.
///
/// # Errors
///
/// [`StoreError::Corrupt`] for anything Rondo did not write.
pub fn parse_redis_record(fields: Vec<Value>) -> Result<Record, StoreError> {
    match msgpack_values(Loaded::Record(parse_record(fields)?))? {
        Loaded::Record(record) => Ok(record),
        Loaded::Missing | Loaded::Unchanged | Loaded::Moved(_) => {
            Err(StoreError::Corrupt("no record".into()))
        }
    }
}

/// A stored value decoded as `Session::get` decodes it.
///
/// # Errors
///
/// [`SessionError::Decode`] when `bytes` is not a MessagePack `T`.
pub fn decode_value<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, SessionError> {
    super::handle::decode(key, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(bytes: &[u8]) -> Value {
        Value::BulkString(bytes.to_vec())
    }

    /// A record as Rondo writes it parses; a data value that is truncated, has bytes after
    /// it or is no MessagePack at all makes the whole record corrupt (a fresh session).
    #[test]
    fn malformed_values_make_the_record_corrupt() {
        let good = rmp_serde::to_vec("apple").expect("encodes");
        let record = |value: &[u8]| {
            parse_redis_record(vec![
                bulk(b"_v"),
                bulk(b"3"),
                bulk(b"_c"),
                bulk(b"1700000000"),
                bulk(b"d:item"),
                bulk(value),
            ])
        };
        let parsed = record(&good).expect("valid record");
        assert_eq!(parsed.version, 3);
        assert_eq!(parsed.data["item"].as_ref(), good.as_slice());
        let truncated = &good[..good.len() - 1];
        let trailing = [good.as_slice(), b"x"].concat();
        for bad in [
            truncated,
            trailing.as_slice(),
            b"",
            b"\xc1",
            b"\xdd\xff\xff\xff\xff",
        ] {
            assert!(
                matches!(record(bad), Err(StoreError::Corrupt(_))),
                "{bad:?} accepted"
            );
        }
    }

    /// Decoding a value of the wrong type is a clean `Decode` error naming the key.
    #[test]
    fn wrong_type_is_a_decode_error() {
        let text = rmp_serde::to_vec("seven").expect("encodes");
        match decode_value::<u64>("count", &text) {
            Err(SessionError::Decode { key, .. }) => assert_eq!(key, "count"),
            other => panic!("expected a decode error, got {other:?}"),
        }
    }
}
