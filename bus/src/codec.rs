//! JSON codec with a protocol version on every payload.
//!
//! Changing the wire: adding an optional field is compatible (readers ignore
//! unknown fields, so `v` stays 1). Renaming or removing a field, or changing
//! its meaning, is a new major version: bump [`PROTOCOL_VERSION`] and teach
//! readers both versions while old agents are still around.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// The major version of the wire format this build speaks.
pub const PROTOCOL_VERSION: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("message is not valid JSON")]
    Json(#[source] serde_json::Error),
    #[error("message is not a JSON object")]
    NotAnObject,
    #[error("message has no protocol version field \"v\"")]
    MissingVersion,
    #[error("message has protocol version {0}; this build speaks version {PROTOCOL_VERSION}")]
    UnsupportedVersion(u64),
    #[error("message does not match its schema")]
    Schema(#[source] serde_json::Error),
}

/// Serialises `message` as a JSON object with `"v": 1` added.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut value = serde_json::to_value(message).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("v".to_owned(), Value::from(PROTOCOL_VERSION));
    }
    // Serialising a `Value` cannot fail.
    serde_json::to_vec(&value).unwrap_or_default()
}

/// Parses a payload, checking its protocol version before its schema.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, CodecError> {
    let value: Value = serde_json::from_slice(payload).map_err(CodecError::Json)?;
    let Value::Object(map) = &value else {
        return Err(CodecError::NotAnObject);
    };
    match map.get("v").and_then(Value::as_u64) {
        Some(PROTOCOL_VERSION) => {}
        Some(other) => return Err(CodecError::UnsupportedVersion(other)),
        None => return Err(CodecError::MissingVersion),
    }
    serde_json::from_value(value).map_err(CodecError::Schema)
}
