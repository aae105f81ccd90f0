//! What an idempotency key remembers: a digest of the request it came with
//! and the answer it got, so that a retry gets the same answer and a
//! different request under the same key is refused.
//!
//! Never the request itself: a card order's request holds the card number,
//! and nothing may write that to disk. The digest covers the card's last
//! four digits only (a digest of the whole number could be searched for:
//! card numbers are few enough to try them all).

use super::OrderReceipt;
use crate::domain::ValidOrder;
use crate::error::NodeError;
use crate::store::{Store, StoreError, Table, Tx, TxResult};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Idempotency key → what it remembers.
const KEYS: Table<KeyRecord> = Table::new("idempotency");

/// Before keys were kept as digests: key → the whole request (card
/// included) and the answer. Rewritten as digests at start
/// ([`scrub_legacy`]).
const LEGACY: Table<LegacyRecord> = Table::new("idempotency_keys");

#[derive(Serialize, Deserialize)]
pub struct KeyRecord {
    request_sha256: [u8; 32],
    pub receipt: OrderReceipt,
}

#[derive(Serialize, Deserialize)]
struct LegacyRecord {
    request: ValidOrder,
    receipt: OrderReceipt,
}

impl KeyRecord {
    pub fn new(request: &ValidOrder, receipt: &OrderReceipt) -> KeyRecord {
        KeyRecord { request_sha256: digest(request), receipt: receipt.clone() }
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

pub fn lookup(store: &Store, key: &str) -> Result<Option<KeyRecord>, StoreError> {
    store.get(KEYS, key)
}

pub fn remember(tx: &mut Tx<'_>, key: &str, record: &KeyRecord) -> TxResult<(), NodeError> {
    tx.put(KEYS, key, record)
}

/// Rewrites the keys kept by an earlier version, with their whole requests,
/// as digests, so that no card number stays on disk. Returns how many.
pub fn scrub_legacy(store: &Store) -> Result<usize, NodeError> {
    let legacy: Vec<(Vec<u8>, LegacyRecord)> = store.entries_from(LEGACY, [])?.collect::<Result<_, _>>()?;
    for (key, old) in &legacy {
        let record = KeyRecord::new(&old.request, &old.receipt);
        store.write(|tx| -> TxResult<(), NodeError> {
            tx.put(KEYS, key, &record)?;
            tx.remove(LEGACY, key)
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
        let record = KeyRecord::new(&card_order("4111111111111111"), &receipt());
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
        let kept = lookup(&store, "k1").unwrap().unwrap();
        assert!(kept.is_for(&card_order("4111111111111111")));
        let everything: Vec<u8> =
            store.raw_entries("idempotency").unwrap().into_iter().flat_map(|(_, v)| v).collect();
        assert!(!String::from_utf8_lossy(&everything).contains("4111111111111111"));
    }
}
