//! Stored session records as Redis returns them (`HGETALL`): whatever a corrupted or hostile
//! record holds, parsing gives a record or `StoreError::Corrupt` (the session layer then
//! starts a fresh session), and every value of a parsed record decodes or fails cleanly.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use redis::Value;
use rondo::session::fuzzing::{decode_value, parse_redis_record};
use rondo::session::store::StoreError;

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Item {
    sku: String,
    qty: u32,
    tags: Option<Vec<String>>,
}

/// Decodes `bytes` as the types applications typically store; none may panic.
fn decode_all(bytes: &[u8]) {
    let _ = decode_value::<u64>("k", bytes);
    let _ = decode_value::<i64>("k", bytes);
    let _ = decode_value::<String>("k", bytes);
    let _ = decode_value::<Vec<String>>("k", bytes);
    let _ = decode_value::<Vec<Item>>("k", bytes);
    let _ = decode_value::<HashMap<String, u64>>("k", bytes);
    let _ = decode_value::<Option<(bool, f64)>>("k", bytes);
    let _ = decode_value::<serde_json::Value>("k", bytes);
}

/// Reads the input as fields: a kind byte, a length byte, then that many bytes.
fn fields(mut data: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    while let [kind, len, rest @ ..] = data {
        let len = usize::from(*len).min(rest.len());
        let (bytes, tail) = rest.split_at(len);
        data = tail;
        out.push(match kind % 5 {
            0 | 1 => Value::BulkString(bytes.to_vec()),
            2 => Value::SimpleString(String::from_utf8_lossy(bytes).into_owned()),
            3 => Value::Int(i64::try_from(len).unwrap_or(0)),
            _ => Value::Nil,
        });
    }
    out
}

fuzz_target!(|data: &[u8]| {
    decode_all(data);
    match parse_redis_record(fields(data)) {
        Ok(record) => {
            assert_ne!(record.version, 0, "a record without a version is corrupt");
            for value in record.data.values() {
                decode_all(value);
            }
        }
        Err(StoreError::Corrupt(_)) => {}
        Err(other) => panic!("parsing can only find corruption, got {other:?}"),
    }
});
