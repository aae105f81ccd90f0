//! A customer's notifications answered from a store the notification
//! service does not run on: a failover follower's copy of the leader's
//! (`http::forward::reads`), as `actors::projection::from_store` answers
//! the status views.
//!
//! The store holds each order's record as the leader's service last
//! committed it (written behind, with its log offset). The events after
//! that offset are folded on top with the service's own rule
//! ([`super::fold`]), so what an order was told a moment ago is there.

use super::told::{self, Notified, BY_CUSTOMER, NOTIFIED};
use super::{cause_of, fold, NAME};
use crate::domain::{CustomerId, Notification, OrderId, Workflows};
use crate::error::NodeError;
use crate::store::{key_prefix, Reader, UNFOLDED_AT_MOST};
use std::collections::{BTreeMap, HashSet};

/// What `customer` was told, oldest first, as the service lists it;
/// `None` when this store cannot tell (more than [`UNFOLDED_AT_MOST`]
/// events past the service's offset, or an event of one of the
/// customer's orders set aside by the service, whose later events wait
/// behind it there).
pub fn notifications_in(
    store: &Reader<'_>,
    workflows: &Workflows,
    customer: &CustomerId,
) -> Result<Option<Vec<Notification>>, NodeError> {
    let Some(unfolded) = store.unfolded(NAME, UNFOLDED_AT_MOST)? else { return Ok(None) };
    let mut records: BTreeMap<OrderId, Notified> = BTreeMap::new();
    for order in store.scan_prefix(BY_CUSTOMER, key_prefix(customer.as_str()))? {
        if let Some(record) = store.get(NOTIFIED, order.as_str())? {
            records.insert(order, record);
        }
    }
    // Orders found to be another customer's, not to look up again.
    let mut others: HashSet<OrderId> = HashSet::new();
    for event in &unfolded {
        let order = &event.order_id;
        if others.contains(order) {
            continue;
        }
        if !records.contains_key(order) {
            // Placed since the service's commit, or another customer's.
            let record = match store.get(NOTIFIED, order.as_str())? {
                Some(record) => Some(record),
                None => told::new_record(store, event)?,
            };
            match record {
                Some(record) if record.to.customer == *customer => {
                    records.insert(order.clone(), record);
                }
                _ => {
                    others.insert(order.clone());
                    continue;
                }
            }
        }
        let cause = cause_of(store, event)?;
        if let Some(record) = records.get_mut(order) {
            fold(record, event, cause.as_ref(), workflows);
        }
    }
    for order in records.keys() {
        if store.dead_letters_of(order)?.iter().any(|letter| letter.service == NAME) {
            return Ok(None);
        }
    }
    let mut all = told::format_1_of(store, customer)?;
    for (order, record) in &records {
        all.extend(record.notifications(order));
    }
    all.sort_by_key(|n| n.event);
    Ok(Some(all))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::consumer::CommitHeldBack;
    use crate::actors::notification::tests::build;
    use crate::actors::notification::ListNotifications;
    use crate::actors::testing::{money, order, paid, placed, temp_store};
    use crate::domain::{CancelReason, EventKind, PaymentMethod};
    use actix::Actor;

    #[actix::test]
    async fn what_a_customer_was_told_read_from_the_store_alone_is_the_services() {
        let t = temp_store();
        let an_hour = std::time::Duration::from_secs(3600);
        let n = build(&t, crate::config::Settings::default().webhooks).committing_every(an_hour).start();
        let workflows = Workflows::new(Default::default(), "shop");
        let kim = CustomerId::parse("kim").unwrap();
        let read = || notifications_in(&t.store.reader(), &workflows, &kim).unwrap();

        // Given orders told of, their records held back, not in the store.
        t.append(&order(1), vec![placed("kim", &[("A", 1, 100)], PaymentMethod::Card), paid(100)]);
        t.append(&order(2), vec![placed("lee", &[("A", 1, 100)], PaymentMethod::Card)]);
        t.caught_up(NAME).await;
        assert_eq!(t.store.offset(NAME).unwrap(), 0, "held back");
        let listed = n.send(ListNotifications(kim.clone())).await.unwrap().unwrap();
        assert_eq!(read(), Some(listed), "folded from the log");

        // When they are committed, and more happens after: a cancel, its
        // refund (told with the cancel as its reason), another order.
        n.send(CommitHeldBack).await.unwrap().unwrap();
        t.append(&order(1), vec![EventKind::OrderCanceled { reason: CancelReason::CustomerRequest }]);
        let cancel = t.store.head();
        let refund = EventKind::PaymentRefunded { amount: money(100) };
        t.store
            .write::<_, ()>(|tx| tx.append(&order(1), Some(cancel), refund.clone()))
            .map_err(|_| ())
            .unwrap();
        t.append(&order(3), vec![placed("kim", &[("A", 1, 100)], PaymentMethod::None)]);
        t.caught_up(NAME).await;

        // Then the store's records with what followed folded on, as listed.
        let listed = n.send(ListNotifications(kim.clone())).await.unwrap().unwrap();
        let told = read().unwrap();
        assert_eq!(told, listed);
        let orders: Vec<&str> = told.iter().map(|n| n.order_id.as_str()).collect();
        assert_eq!(orders, ["ord-1", "ord-1", "ord-1", "ord-1", "ord-3"], "{told:?}");
        assert!(told[3].message.contains("refunded"), "{}", told[3].message);
    }
}
