//! The sled log's records: the events of one commit in one value.
//!
//! Every key written is time under sled's process-wide lock, and the events
//! of a commit are numbered one after the other, so the log keeps each
//! commit's events as one record, keyed by the number of its first event
//! (big-endian, so key order is log order): about 7 log keys per order
//! become a fraction of one. A record is [`TAG`], the count, then each
//! event's length and bytes. A log written before holds one event per key,
//! stored as the event's own bytes, which start with the codec's format
//! version (1 to 3), never with [`TAG`]: both read the same.

use crate::domain::Seq;
use crate::store::{CodecError, StoreError};

/// The first byte of a record of several events: no codec format version.
const TAG: u8 = 0xFF;

/// The record of `events` (numbered one after the other).
pub(super) fn encode(events: &[(Seq, Vec<u8>)]) -> Vec<u8> {
    let size = 5 + events.iter().map(|(_, e)| 4 + e.len()).sum::<usize>();
    let mut record = Vec::with_capacity(size);
    record.push(TAG);
    record.extend_from_slice(&(events.len() as u32).to_be_bytes());
    for (_, bytes) in events {
        record.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        record.extend_from_slice(bytes);
    }
    record
}

/// The events of a record, in order: one for a value written before
/// records were (the event itself).
pub(super) fn decode(record: &[u8]) -> Result<Vec<&[u8]>, StoreError> {
    let Some((&TAG, rest)) = record.split_first() else { return Ok(vec![record]) };
    let (count, mut rest) = take_u32(rest)?;
    let mut events = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (len, after) = take_u32(rest)?;
        let len = len as usize;
        if after.len() < len {
            return Err(damaged("an event is cut short"));
        }
        events.push(&after[..len]);
        rest = &after[len..];
    }
    match rest.is_empty() {
        true => Ok(events),
        false => Err(damaged("bytes are left over")),
    }
}

/// How many events a record holds, from its head alone.
pub(super) fn count(record: &[u8]) -> Result<u64, StoreError> {
    match record.split_first() {
        Some((&TAG, rest)) => Ok(u64::from(take_u32(rest)?.0)),
        _ => Ok(1),
    }
}

fn take_u32(bytes: &[u8]) -> Result<(u32, &[u8]), StoreError> {
    match bytes.split_first_chunk::<4>() {
        Some((n, rest)) => Ok((u32::from_be_bytes(*n), rest)),
        None => Err(damaged("its head is cut short")),
    }
}

fn damaged(what: &str) -> StoreError {
    StoreError::Codec(CodecError::Decode(format!("a log record does not read: {what}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_holds_its_events_in_order_and_an_old_value_is_one_event() {
        let events = vec![(7, b"seven".to_vec()), (8, Vec::new()), (9, b"nine".to_vec())];
        let record = encode(&events);
        assert_eq!(decode(&record).unwrap(), [&b"seven"[..], b"", b"nine"]);
        assert_eq!(count(&record).unwrap(), 3);
        // A value of a log written one event per key: the event's bytes,
        // which start with the codec's version.
        let old = [3u8, 1, 2, 3];
        assert_eq!((decode(&old).unwrap(), count(&old).unwrap()), (vec![&old[..]], 1));
    }

    #[test]
    fn a_cut_record_is_an_error_not_a_panic() {
        let record = encode(&[(1, b"abc".to_vec()), (2, b"de".to_vec())]);
        for cut in 1..record.len() {
            assert!(decode(&record[..cut]).is_err(), "cut at {cut}");
        }
        assert!(count(&record[..3]).is_err());
    }
}
