//! Session values as MessagePack (rmp-serde), and the keys an application may use: keys
//! starting with `_` belong to the framework (flash values, CSRF tokens).

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::session::error::SessionError;

/// `value` as MessagePack, with field names.
pub(super) fn encode<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Bytes, SessionError> {
    rmp_serde::to_vec_named(value)
        .map(Bytes::from)
        .map_err(|e| SessionError::Encode {
            key: key.to_owned(),
            message: e.to_string(),
        })
}

/// A `T` from MessagePack.
pub(crate) fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, SessionError> {
    rmp_serde::from_slice(bytes).map_err(|e| SessionError::Decode {
        key: key.to_owned(),
        message: e.to_string(),
    })
}

/// `key`, unless it is reserved for the framework.
pub(super) fn user_key(key: &str) -> Result<&str, SessionError> {
    if key.starts_with('_') {
        Err(SessionError::ReservedKey(key.to_owned()))
    } else {
        Ok(key)
    }
}
