//! The one place values are turned into bytes for sled.
//!
//! bincode 2 with its serde bridge; every value starts with a format-version
//! byte, so that a later change of format (or of codec: bincode's 3.x line is
//! a tombstone and the project is unmaintained) is confined to this file.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The format of every value written by this version.
const VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("stored value is empty")]
    Empty,
    #[error("stored value has format version {0}, this build reads {VERSION}")]
    Version(u8),
    #[error("stored value does not decode: {0}")]
    Decode(String),
    #[error("value does not encode: {0}")]
    Encode(String),
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![VERSION];
    bincode::serde::encode_into_std_write(value, &mut out, config())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(out)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != VERSION {
        return Err(CodecError::Version(version));
    }
    let (value, _) =
        bincode::serde::decode_from_slice(body, config()).map_err(|e| CodecError::Decode(e.to_string()))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CancelReason, Event, EventKind, OrderId};

    #[test]
    fn events_round_trip() {
        let e = Event {
            seq: 9,
            order_id: OrderId::from_number(3),
            caused_by: Some(4),
            at_ms: 17,
            kind: EventKind::OrderCanceled { reason: CancelReason::OutOfStock },
        };
        assert_eq!(decode::<Event>(&encode(&e).unwrap()).unwrap(), e);
    }

    #[test]
    fn unknown_versions_and_garbage_are_errors_not_panics() {
        assert_eq!(decode::<u64>(&[]), Err(CodecError::Empty));
        assert_eq!(decode::<u64>(&[9, 1]), Err(CodecError::Version(9)));
        assert!(matches!(decode::<String>(&[VERSION, 200]), Err(CodecError::Decode(_))));
    }
}
