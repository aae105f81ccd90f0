//! The one place values are turned into bytes for sled.
//!
//! bincode 2 with its serde bridge; every value starts with a format-version
//! byte, so that a later change of format (or of codec: bincode's 3.x line is
//! a tombstone and the project is unmaintained) is confined to this file.
//!
//! # How stored types grow
//!
//! bincode is not self-describing: a value is its fields' bytes in order,
//! with nothing to say which are there. Stored types therefore grow by one
//! rule only: **a new field goes at the very end of its type, and of every
//! type that holds it in its last field** (an `Event`'s `kind` is its last
//! field, so a variant of `EventKind` may grow at its end), **and its
//! default encodes as one zero byte** (`Option`, `Vec`, a map, `bool`, an
//! integer). A value written before is then a prefix of the same value
//! written now, short of one zero byte per new field; [`decode`] reads an
//! older version by adding zero bytes until the value is whole, and reads
//! the current version exactly. Enum variants are only ever appended.
//!
//! Every growth takes a new version number, so that values of the current
//! version are still read exactly. Anything else (a field in the middle, a
//! changed type) needs its own conversion here. The golden tests below hold
//! the older bytes of each type that has grown since, so a change that
//! breaks the rule fails them.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The format of every value written by this version.
const VERSION: u8 = 3;

/// The first format: every format from it up to [`VERSION`] is read by
/// zero-extension (see the module's doc). Format 2 added fields to the
/// orders, events and views; format 3, to subscriptions.
const GROWN_FROM: u8 = 1;

/// Most fields a stored type has gained since [`GROWN_FROM`].
const MOST_NEW_FIELDS: usize = 8;

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
    match version {
        VERSION => decode_whole(body),
        GROWN_FROM..VERSION => decode_grown(body),
        other => Err(CodecError::Version(other)),
    }
}

/// Decodes `body`, which must be exactly one value: bytes left over mean
/// the value is not what its type says.
fn decode_whole<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    let (value, read) =
        bincode::serde::decode_from_slice(body, config()).map_err(|e| CodecError::Decode(e.to_string()))?;
    match read == body.len() {
        true => Ok(value),
        false => Err(CodecError::Decode(format!("{} bytes left over", body.len() - read))),
    }
}

/// Decodes a value written before its type grew: the fields added since
/// are missing from its end, and each one's default is one zero byte.
fn decode_grown<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    let mut padded = body.to_vec();
    let mut first_error = None;
    for _ in 0..=MOST_NEW_FIELDS {
        match decode_whole(&padded) {
            Ok(value) => return Ok(value),
            Err(e) => first_error = first_error.or(Some(e)),
        }
        padded.push(0);
    }
    Err(first_error.unwrap_or(CodecError::Empty))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::inventory::Reservation;
    use crate::domain::{CancelReason, Event, EventKind, Order, OrderId, Product, StatusView};

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
        assert!(matches!(decode::<u8>(&[VERSION, 1, 2]), Err(CodecError::Decode(_))), "left over");
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// Values written by version 1, before the types grew (see the module's
    /// doc), read now with their new fields at the defaults.
    #[test]
    fn values_written_by_version_1_still_decode() {
        let event = "0109056f72642d3300fd008844709e01000000036b696d0108524f4f4d2d44424c01fbc05d0553656f756c00fbc05d05686f74656c01";
        let order = "01056f72642d33036b696d0108524f4f4d2d44424c01fbc05d0553656f756c00fbc05d05686f74656c0401057061792d310001047231303101056772616e640100000000";
        let view = "01056f72642d3305036b696d05686f74656c0108524f4f4d2d44424c01fbc05dfbc05d0001fbc05d010105646c762d3301010473746179010014323032362d30352d32385432303a32363a34305a000001047231303101056772616e64090e";
        let product = "0108524f4f4d2d44424c0b446f75626c6520726f6f6dfbc05d020204723130310472313032";
        let reservation = "010108524f4f4d2d44424c0101047231303101";
        assert_eq!(decode::<Event>(&unhex(event)), Ok(samples::placed_event()));
        assert_eq!(decode::<Order>(&unhex(order)), Ok(samples::order()));
        assert_eq!(decode::<StatusView>(&unhex(view)), Ok(samples::view()));
        assert_eq!(decode::<Product>(&unhex(product)), Ok(samples::product()));
        assert_eq!(decode::<Reservation>(&unhex(reservation)), Ok(samples::reservation()));
    }

    /// Values written by version 2, read now with the fields of version 3.
    #[test]
    fn values_written_by_version_2_still_decode() {
        let subscription = "02071a687474703a2f2f3132372e302e302e313a393030302f686f6f6b0105686f74656c0105686f74656c0001020114612d7365637265742d6f662d31362d6279746573086f70657261746f72";
        assert_eq!(decode(&unhex(subscription)), Ok(samples::subscription()));
    }

    #[test]
    fn the_current_version_round_trips_exactly() {
        assert_eq!(encode(&samples::order()).unwrap()[0], VERSION);
        assert_eq!(decode::<Order>(&encode(&samples::order()).unwrap()), Ok(samples::order()));
        assert_eq!(decode::<StatusView>(&encode(&samples::view()).unwrap()), Ok(samples::view()));
        assert_eq!(decode::<Event>(&encode(&samples::placed_event()).unwrap()), Ok(samples::placed_event()));
    }
}

#[cfg(test)]
mod samples;
