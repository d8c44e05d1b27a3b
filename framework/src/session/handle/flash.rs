//! Flash values: set in one request, readable in the next request that opens the session,
//! then dropped ("item added" after a redirect).
//!
//! A flashed value lives under `_flash:{key}`; `_flash.old` lists the keys flashed by the
//! previous request. At the end of a request that opened the session, the keys listed there
//! (and not flashed again) are removed and this request's keys take their place.

use std::collections::HashMap;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::codec::{decode, encode};
use super::Session;
use crate::session::actor::Op;
use crate::session::error::SessionError;

/// Lists the keys to drop at the end of the next request that opens the session.
const FLASH_OLD: &str = "_flash.old";

impl Session {
    /// Stores a value readable by the next request that opens the session (and by this one),
    /// then dropped: "item added" after a redirect.
    ///
    /// # Errors
    ///
    /// The value cannot be encoded or the session would grow too large.
    pub fn flash<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), SessionError> {
        let bytes = encode(key, value)?;
        self.raw_put(&format!("_flash:{key}"), bytes)?;
        self.mark_flashed(key);
        Ok(())
    }

    /// A flash value set by the previous request (or this one).
    ///
    /// # Errors
    ///
    /// The store could not be reached, or the value is not a `T`.
    pub async fn flash_get<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, SessionError> {
        self.raw_get(&format!("_flash:{key}"))
            .await?
            .map(|bytes| decode(key, &bytes))
            .transpose()
    }
}

/// The changes that age flash values at the end of a request: `opened` is the session as the
/// request saw it (if it opened it), `flashed` the keys it flashed.
pub(super) fn age(
    opened: Option<&HashMap<String, Bytes>>,
    flashed: &[String],
    ops: &mut Vec<Op>,
) -> Result<(), SessionError> {
    let Some(old) = opened.and_then(|data| data.get(FLASH_OLD)) else {
        if !flashed.is_empty() {
            ops.push(Op::Set(FLASH_OLD.to_owned(), encode(FLASH_OLD, flashed)?));
        }
        return Ok(());
    };
    let old: Vec<String> = rmp_serde::from_slice(old).unwrap_or_default();
    for key in old.iter().filter(|k| !flashed.contains(k)) {
        ops.push(Op::Remove(format!("_flash:{key}")));
    }
    if flashed.is_empty() {
        ops.push(Op::Remove(FLASH_OLD.to_owned()));
    } else {
        ops.push(Op::Set(FLASH_OLD.to_owned(), encode(FLASH_OLD, flashed)?));
    }
    Ok(())
}
