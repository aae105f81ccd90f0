//! How the notification service keeps what it told: one record per order.
//!
//! Format 2 keeps an order's recipient, its rejection and every
//! notification of it in one record ([`Notified`]), written behind
//! ([`crate::actors::write_behind`]): an order's four or five status
//! changes are folded into the record in memory and stored once a commit,
//! where format 1 wrote a key for every notification, one for the
//! recipient and one for a rejection, each time under the store's writer
//! lock. A customer's orders are found through [`BY_CUSTOMER`].
//!
//! Format 1's tables are read, never written: a store written by an older
//! node keeps its notifications where they are, and an order of it that
//! changes again gets a format 2 record for what it is told from then on.

use crate::domain::{
    rfc3339, CustomerId, Event, EventKind, Notification, OrderId, OrderStatus, PaymentMethod, Seq,
};
use crate::error::NodeError;
use crate::store::{key_prefix, Reader, Store, StoreError, Table};
use serde::{Deserialize, Serialize};

/// `order` → who its messages go to, and what it was told.
pub(super) const NOTIFIED: Table<Notified> = Table::new("notified");
/// `customer \0 order` → the order: the orders a customer was told of.
pub(super) const BY_CUSTOMER: Table<OrderId> = Table::new("notified_by_customer");

/// Format 1: `customer \0 seq` → a notification.
pub(super) const NOTIFICATIONS: Table<Notification> = Table::new("notifications");
/// Format 1: `order` → its recipient, for orders not paid by card.
const RECIPIENTS: Table<Recipient> = Table::new("recipients");
/// Format 1: `order` → its recipient, for card orders.
pub(super) const CARD_RECIPIENTS: Table<Recipient> = Table::new("recipients_card");
/// Format 1: `order` → a checkpoint's words when it rejected the order.
const REJECTIONS: Table<String> = Table::new("recipient_rejections");

/// Who an order's messages go to, and in which words. Stored before its
/// workflow and language were (format 1 of the recipient: the customer
/// alone); those read as none, and get the built-in English.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Recipient {
    pub customer: CustomerId,
    // Grown since format 1: new fields go at the end (see store::codec).
    pub workflow: Option<String>,
    pub lang: Option<String>,
}

/// One order's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Notified {
    pub to: Recipient,
    /// Paid by card: a pending payment was deferred, and its message says
    /// so.
    pub card: bool,
    /// A checkpoint's words, for the message that its rejection cancels
    /// the order.
    pub rejection: Option<String>,
    /// What the customer was told, oldest first.
    told: Vec<Told>,
}

/// One notification, without what its record already says.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Told {
    event: Seq,
    status: OrderStatus,
    message: String,
    at_ms: u64,
}

impl Notified {
    pub fn new(to: Recipient, payment: PaymentMethod) -> Notified {
        Notified { to, card: payment == PaymentMethod::Card, rejection: None, told: Vec::new() }
    }

    /// How the order is paid, as far as its messages care.
    pub fn payment(&self) -> Option<PaymentMethod> {
        self.card.then_some(PaymentMethod::Card)
    }

    /// Records `n`, made from an event at `at_ms`; the same event told
    /// again (a replay) replaces what it told before.
    pub fn tell(&mut self, n: &Notification, at_ms: u64) {
        let told = Told { event: n.event, status: n.status, message: n.message.clone(), at_ms };
        match self.told.binary_search_by_key(&n.event, |t| t.event) {
            Ok(i) => self.told[i] = told,
            Err(i) => self.told.insert(i, told),
        }
    }

    /// What the order `order` was told, oldest first.
    pub fn notifications<'a>(&'a self, order: &'a OrderId) -> impl Iterator<Item = Notification> + 'a {
        self.told.iter().map(move |t| self.expand(order, t))
    }

    /// The notification of the event `seq`, if it told anything.
    pub fn of_event(&self, order: &OrderId, seq: Seq) -> Option<Notification> {
        let i = self.told.binary_search_by_key(&seq, |t| t.event).ok()?;
        Some(self.expand(order, &self.told[i]))
    }

    fn expand(&self, order: &OrderId, t: &Told) -> Notification {
        Notification {
            event: t.event,
            order_id: order.clone(),
            customer: self.to.customer.clone(),
            status: t.status,
            message: t.message.clone(),
            at: rfc3339(t.at_ms),
        }
    }
}

/// `customer \0 order`.
pub(super) fn customer_key(customer: &CustomerId, order: &OrderId) -> Vec<u8> {
    let mut key = key_prefix(customer.as_str());
    key.extend_from_slice(order.as_str().as_bytes());
    key
}

/// A record for `event`'s order where none is stored in format 2: new for
/// its placing, or as format 1 left it (no notifications: those stay in
/// format 1's table). `None` if neither.
pub(super) fn new_record(store: &Reader<'_>, event: &Event) -> Result<Option<Notified>, StoreError> {
    if let EventKind::OrderPlaced { customer, payment, workflow, lang, .. } = &event.kind {
        let to =
            Recipient { customer: customer.clone(), workflow: Some(workflow.clone()), lang: lang.clone() };
        return Ok(Some(Notified::new(to, *payment)));
    }
    // Format 1's tables are never written: the store's committed state is
    // what any transaction would read.
    let key = event.order_id.as_str();
    let (to, payment) = match store.get(RECIPIENTS, key)? {
        Some(to) => (to, PaymentMethod::None),
        None => match store.get(CARD_RECIPIENTS, key)? {
            Some(to) => (to, PaymentMethod::Card),
            None => return Ok(None),
        },
    };
    let mut notified = Notified::new(to, payment);
    notified.rejection = store.get(REJECTIONS, key)?;
    Ok(Some(notified))
}

/// What `event` told, with its order's workflow, given the order's
/// record (`None`: it has none in format 2): the record's, or format 1's
/// (the notifications of an order from before format 2 stay there).
pub(super) fn told_of(
    record: Option<&Notified>,
    store: &Reader<'_>,
    event: &Event,
) -> Result<Option<super::Published>, StoreError> {
    let order = &event.order_id;
    let to = match record {
        Some(record) => match record.of_event(order, event.seq) {
            Some(n) => return Ok(Some((n, record.to.workflow.clone()))),
            None => record.to.clone(),
        },
        None => match store.get(RECIPIENTS, order.as_str())? {
            Some(to) => to,
            None => match store.get(CARD_RECIPIENTS, order.as_str())? {
                Some(to) => to,
                None => return Ok(None),
            },
        },
    };
    let mut key = key_prefix(to.customer.as_str());
    key.extend_from_slice(&event.seq.to_be_bytes());
    let n: Option<Notification> = store.get(NOTIFICATIONS, key)?;
    Ok(n.map(|n| (n, to.workflow)))
}

/// Format 1's notifications of `customer`, oldest first.
pub(super) fn format_1_of(
    store: &Reader<'_>,
    customer: &CustomerId,
) -> Result<Vec<Notification>, StoreError> {
    store.scan_prefix(NOTIFICATIONS, key_prefix(customer.as_str()))
}

/// Every notification committed in `store`, in both formats, in log
/// order: what the crash tests check against the log.
pub fn stored(store: &Store) -> Result<Vec<Notification>, NodeError> {
    let mut all: Vec<Notification> = store.scan_prefix(NOTIFICATIONS, [])?;
    for entry in store.entries_from(NOTIFIED, [])? {
        let (key, notified) = entry?;
        let order = String::from_utf8(key).ok().and_then(|k| OrderId::parse(&k).ok());
        let order =
            order.ok_or_else(|| StoreError::Damaged("a notified order's key is not an order id".into()))?;
        all.extend(notified.notifications(&order));
    }
    all.sort_by_key(|n| n.event);
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn told(event: Seq, message: &str) -> Notification {
        Notification {
            event,
            order_id: OrderId::parse("ord-1").unwrap(),
            customer: CustomerId::parse("kim").unwrap(),
            status: OrderStatus::Placed,
            message: message.into(),
            at: rfc3339(0),
        }
    }

    /// Told again (a replay after a crash), an event replaces what it told;
    /// told out of order, the record stays oldest first.
    #[test]
    fn an_event_told_again_replaces_itself_and_the_record_stays_in_order() {
        let to = Recipient { customer: CustomerId::parse("kim").unwrap(), workflow: None, lang: None };
        let mut n = Notified::new(to, PaymentMethod::Card);
        n.tell(&told(5, "five"), 0);
        n.tell(&told(2, "two"), 0);
        n.tell(&told(5, "five again"), 0);
        let order = OrderId::parse("ord-1").unwrap();
        let messages: Vec<String> = n.notifications(&order).map(|n| n.message).collect();
        assert_eq!(messages, ["two", "five again"]);
        assert_eq!(n.of_event(&order, 2).map(|n| n.message).as_deref(), Some("two"));
        assert!(n.of_event(&order, 3).is_none());
        assert_eq!(n.payment(), Some(PaymentMethod::Card));
    }

    /// A recipient stored before it held its workflow and language (format
    /// 1: the customer alone) still reads, and is told in built-in English.
    #[test]
    fn a_recipient_written_by_format_1_still_reads() {
        let mut v1 = crate::store::encode(&CustomerId::parse("kim").unwrap()).unwrap();
        v1[0] = 1;
        let r: Recipient = crate::store::decode(&v1).unwrap();
        assert_eq!((r.customer.as_str(), r.workflow, r.lang), ("kim", None, None));
    }
}
