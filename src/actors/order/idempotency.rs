//! What an idempotency key remembers: a digest of the request it came with
//! and the answer it got, so that a retry gets the same answer and a
//! different request under the same key is refused.
//!
//! Never the request itself: a card order's request holds the card number,
//! and nothing may write that to disk. The digest covers the card's last
//! four digits only (a digest of the whole number could be searched for:
//! card numbers are few enough to try them all).
//!
//! A key is remembered for `timers.idempotency_key_ttl_ms` (a day), then
//! forgotten: an index by time lets the order service drop the old ones on
//! its timer tick, a few at a time.

use super::OrderReceipt;
use crate::domain::ValidOrder;
use crate::error::NodeError;
use crate::store::{Store, StoreError, Table, Tx, TxResult};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Idempotency key → what it remembers.
const KEYS: Table<KeyRecord> = Table::new("idempotency");
/// `at_ms(be) key` → (): the keys by when they were first used.
const BY_TIME: Table<()> = Table::new("idempotency_by_time");

fn time_key(at_ms: u64, key: &str) -> Vec<u8> {
    let mut k = at_ms.to_be_bytes().to_vec();
    k.extend_from_slice(key.as_bytes());
    k
}

/// Before keys were kept as digests: key → the whole request (card
/// included) and the answer. Rewritten as digests at start
/// ([`scrub_legacy`]).
const LEGACY: Table<LegacyRecord> = Table::new("idempotency_keys");

#[derive(Serialize, Deserialize)]
pub struct KeyRecord {
    request_sha256: [u8; 32],
    pub receipt: OrderReceipt,
    /// When the key was first used (ms since the epoch, engine time).
    at_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct LegacyRecord {
    request: ValidOrder,
    receipt: OrderReceipt,
}

impl KeyRecord {
    pub fn new(request: &ValidOrder, receipt: &OrderReceipt, at_ms: u64) -> KeyRecord {
        KeyRecord { request_sha256: digest(request), receipt: receipt.clone(), at_ms }
    }

    /// Whether `request` is the one this key first came with.
    pub fn is_for(&self, request: &ValidOrder) -> bool {
        self.request_sha256 == digest(request)
    }
}

/// The request's digest, with its card cut to the last four digits.
fn digest(request: &ValidOrder) -> [u8; 32] {
    let mut shown = request.clone();
    shown.card = shown.card.map(|c| c[c.len().saturating_sub(4)..].to_owned());
    // serde_json writes struct fields in order and maps sorted: the same
    // request always gives the same bytes.
    let bytes = serde_json::to_vec(&shown).unwrap_or_default();
    Sha256::digest(&bytes).into()
}

/// What `key` remembers, unless it was first used before `since_ms` (then
/// it is forgotten, even if not dropped yet).
pub fn lookup(store: &Store, key: &str, since_ms: u64) -> Result<Option<KeyRecord>, StoreError> {
    Ok(store.get(KEYS, key)?.filter(|r| r.at_ms >= since_ms))
}

pub fn remember(tx: &mut Tx<'_>, key: &str, record: &KeyRecord) -> TxResult<(), NodeError> {
    if let Some(old) = tx.get(KEYS, key)? {
        // A key reused after it expired: its old entry in the index goes.
        tx.remove(BY_TIME, time_key(old.at_ms, key))?;
    }
    tx.put(BY_TIME, time_key(record.at_ms, key), &())?;
    tx.put(KEYS, key, record)
}

/// Drops up to `limit` keys first used before `before_ms`; returns how many.
pub fn forget_expired(store: &Store, before_ms: u64, limit: usize) -> Result<usize, NodeError> {
    let mut old = Vec::new();
    for entry in store.entries_from(BY_TIME, [])? {
        let (k, ()) = entry?;
        let at = k.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0);
        if at >= before_ms || old.len() == limit {
            break;
        }
        old.push(k);
    }
    for k in &old {
        let key = String::from_utf8_lossy(&k[8..]).into_owned();
        store.write(|tx| -> TxResult<(), NodeError> {
            tx.remove(BY_TIME, k)?;
            match tx.get(KEYS, &key)? {
                Some(r) if time_key(r.at_ms, &key) == *k => tx.remove(KEYS, &key),
                _ => Ok(()),
            }
        })?;
    }
    Ok(old.len())
}

/// Rewrites the keys kept by an earlier version, with their whole requests,
/// as digests, so that no card number stays on disk. Returns how many.
pub fn scrub_legacy(store: &Store) -> Result<usize, NodeError> {
    let legacy: Vec<(Vec<u8>, LegacyRecord)> = store.entries_from(LEGACY, [])?.collect::<Result<_, _>>()?;
    for (key, old) in &legacy {
        // Kept for a full time from now: when they were first used is lost.
        let record = KeyRecord::new(&old.request, &old.receipt, crate::domain::now_ms());
        let key = String::from_utf8_lossy(key).into_owned();
        store.write(|tx| -> TxResult<(), NodeError> {
            remember(tx, &key, &record)?;
            tx.remove(LEGACY, &key)
        })?;
    }
    Ok(legacy.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CustomerId, Money, OrderId, OrderStatus, PaymentMethod};

    fn card_order(card: &str) -> ValidOrder {
        ValidOrder {
            customer: CustomerId::parse("kim").unwrap(),
            lines: vec![],
            address: "Seoul".into(),
            payment: PaymentMethod::Card,
            card: Some(card.into()),
            workflow: "shop".into(),
            details: None,
            stay: None,
            lang: "en".into(),
        }
    }

    fn receipt() -> OrderReceipt {
        OrderReceipt {
            id: OrderId::from_number(1),
            status: OrderStatus::Paid,
            total: Money::ZERO,
            replayed: false,
        }
    }

    #[test]
    fn a_key_knows_its_request_by_digest_without_the_card() {
        let record = KeyRecord::new(&card_order("4111111111111111"), &receipt(), 0);
        assert!(record.is_for(&card_order("4111111111111111")));
        assert!(!record.is_for(&ValidOrder { address: "Busan".into(), ..card_order("4111111111111111") }));
        let bytes = crate::store::encode(&record).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("4111111111111111"));
    }

    #[test]
    fn keys_kept_with_their_whole_request_are_rewritten_as_digests() {
        let store = Store::in_memory();
        let legacy = LegacyRecord { request: card_order("4111111111111111"), receipt: receipt() };
        store.write(|tx| -> TxResult<(), NodeError> { tx.put(LEGACY, "k1", &legacy) }).unwrap();
        assert_eq!(scrub_legacy(&store).unwrap(), 1);
        assert_eq!(scrub_legacy(&store).unwrap(), 0, "once");
        assert!(store.get(LEGACY, "k1").unwrap().is_none());
        let kept = lookup(&store, "k1", 0).unwrap().unwrap();
        assert!(kept.is_for(&card_order("4111111111111111")));
        let everything: Vec<u8> =
            store.raw_entries("idempotency").unwrap().into_iter().flat_map(|(_, v)| v).collect();
        assert!(!String::from_utf8_lossy(&everything).contains("4111111111111111"));
    }
}
