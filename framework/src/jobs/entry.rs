//! Stream entries and jobs: the fields a job is stored as, and the tolerant reading of
//! Redis replies back into deliveries (anything unexpected is skipped or reported as an
//! unreadable entry, never a panic).

use bytes::Bytes;
use redis::Value;

use super::envelope::{Delivery, Envelope};

/// A stream entry: its id and its field/value pairs.
pub(super) type Entry = (String, Vec<(Vec<u8>, Vec<u8>)>);

/// The stream fields of `job`.
pub(super) fn fields(job: &Envelope) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("id", job.id.as_bytes().to_vec()),
        ("name", job.name.as_bytes().to_vec()),
        ("attempts", job.attempts.to_string().into_bytes()),
        ("payload", job.payload.to_vec()),
    ]
}

/// A delivery from a stream entry; an entry that is not a job says why.
pub(super) fn delivery((tag, raw): Entry) -> Delivery {
    let field = |name: &str| {
        raw.iter()
            .find(|(f, _)| f.as_slice() == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    };
    let utf8 = |name: &'static str| {
        field(name)
            .ok_or(format!("no {name} field"))
            .and_then(|v| String::from_utf8(v.to_vec()).map_err(|_| format!("{name} is not UTF-8")))
    };
    let job = (|| {
        let attempts = utf8("attempts")?
            .parse()
            .map_err(|_| "attempts is not a number".to_owned())?;
        Ok(Envelope {
            id: utf8("id")?,
            name: utf8("name")?,
            attempts,
            payload: Bytes::copy_from_slice(field("payload").ok_or("no payload field")?),
        })
    })();
    Delivery {
        tag: Some(tag),
        job,
        raw,
    }
}

/// The entries of an `XREADGROUP` reply (RESP2 arrays or RESP3 maps; nil on timeout).
pub(super) fn stream_entries(value: &Value) -> Vec<Entry> {
    match value {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(pair) => pair.get(1).map(entry_list),
                _ => None,
            })
            .flatten()
            .collect(),
        Value::Map(streams) => streams.iter().flat_map(|(_, v)| entry_list(v)).collect(),
        _ => Vec::new(),
    }
}

/// `[[id, [field, value, ...]], ...]`; entries deleted meanwhile (nil) are skipped.
pub(super) fn entry_list(value: &Value) -> Vec<Entry> {
    let Value::Array(items) = value else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let Value::Array(parts) = item else {
                return None;
            };
            let id = text(parts.first()?)?;
            let Value::Array(flat) = parts.get(1)? else {
                return None;
            };
            let pairs = flat
                .chunks_exact(2)
                .filter_map(|kv| Some((bytes(&kv[0])?, bytes(&kv[1])?)))
                .collect();
            Some((id, pairs))
        })
        .collect()
}

fn bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

pub(super) fn text(value: &Value) -> Option<String> {
    bytes(value).and_then(|b| String::from_utf8(b).ok())
}
