//! A customer's notifications answered from a store the notification
//! service does not run on: a failover follower's copy of the leader's
//! (`http::forward::reads`), as `actors::projection::from_store` answers
//! the status views.
//!
//! The store holds each order's record as the leader's service last
//! committed it (written behind, with its log offset). The events after
//! that offset are folded on top with the service's own rule
//! ([`super::rule`]), so what an order was told a moment ago is there.

use super::rule::{cause_of, fold};
use super::told::{self, Notified, BY_CUSTOMER, NOTIFIED};
use super::webhooks::SUBSCRIPTIONS;
use super::{Published, NAME};
use crate::domain::subscription::Subscription;
use crate::domain::{CustomerId, Event, Notification, OrderId, Seq, Workflows};
use crate::error::NodeError;
use crate::store::{key_prefix, Reader, UNFOLDED_AT_MOST};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Every webhook subscription, as the service lists them: they are
/// written at once (subscribe, unsubscribe), so the store holds them all.
pub fn subscriptions_in(store: &Reader<'_>) -> Result<Vec<Subscription>, NodeError> {
    Ok(store.scan_prefix(SUBSCRIPTIONS, [])?)
}

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
        if store.set_aside(order, NAME)? {
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

/// The service's rule run over a store's log as it grows, for a store read
/// alone: what a failover follower's live streams follow
/// (`http::forward::live`).
///
/// It starts at the log's head with the events after the service's
/// committed offset folded in, so that every record it folds later is
/// whole. It keeps the records it folded until the service's commits
/// hold every event of them, and reads any other order's from the store
/// (whole up to the offset it was committed with, which is past every
/// event of the order this tail has not folded).
pub struct Tail {
    /// The last event read.
    at: Seq,
    /// The records folded here, with the last event folded into each.
    records: HashMap<OrderId, (Notified, Seq)>,
    workflows: Arc<Workflows>,
}

impl Tail {
    /// `None` more than [`UNFOLDED_AT_MOST`] events past the service's
    /// offset (as [`notifications_in`]).
    pub fn start(store: &Reader<'_>, workflows: Arc<Workflows>) -> Result<Option<Tail>, NodeError> {
        let Some(unfolded) = store.unfolded(NAME, UNFOLDED_AT_MOST)? else { return Ok(None) };
        let mut tail = Tail { at: store.offset(NAME)?, records: HashMap::new(), workflows };
        for event in &unfolded {
            tail.fold(store, event)?;
        }
        Ok(Some(tail))
    }

    /// What the log's next events tell (at most `limit` read), each with
    /// its order's workflow; and whether the log goes on after them.
    pub fn next(&mut self, store: &Reader<'_>, limit: usize) -> Result<(Vec<Published>, bool), NodeError> {
        let events = store.read_log(self.at, limit)?;
        let mut told = Vec::new();
        for event in &events {
            told.extend(self.fold(store, event)?);
        }
        let committed = store.offset(NAME)?;
        self.records.retain(|_, (_, last)| *last > committed);
        Ok((told, events.len() == limit))
    }

    /// Folds `event` into its order's record: what it tells, if anything.
    /// An order the service set an event of aside is left as the service
    /// leaves it: its later events wait behind that one there.
    fn fold(&mut self, store: &Reader<'_>, event: &Event) -> Result<Option<Published>, NodeError> {
        self.at = event.seq;
        let order = &event.order_id;
        if store.set_aside(order, NAME)? {
            return Ok(None);
        }
        let (record, last) = match self.records.entry(order.clone()) {
            Entry::Occupied(held) => held.into_mut(),
            Entry::Vacant(free) => {
                let record = match store.get(NOTIFIED, order.as_str())? {
                    Some(record) => record,
                    None => match told::new_record(store, event)? {
                        Some(record) => record,
                        None => return Ok(None),
                    },
                };
                free.insert((record, 0))
            }
        };
        let cause = cause_of(store, event)?;
        fold(record, event, cause.as_ref(), &self.workflows);
        *last = event.seq;
        Ok(record.of_event(order, event.seq).map(|n| (n, record.to.workflow.clone())))
    }
}

/// The notifications the events after `after` told of orders of the
/// `wanted` workflows, oldest first, as the service's backlog gives them
/// (a live stream that resumes); `None` when this store cannot tell (as
/// [`notifications_in`]), or more than `at_most` events follow `after`
/// (the node that runs the service reads a long backlog a page at a time).
pub fn backlog_in(
    store: &Reader<'_>,
    workflows: &Arc<Workflows>,
    wanted: &[String],
    after: Seq,
    at_most: usize,
) -> Result<Option<Vec<Notification>>, NodeError> {
    let Some(tail) = Tail::start(store, workflows.clone())? else { return Ok(None) };
    let events = store.read_log(after, at_most + 1)?;
    if events.len() > at_most {
        return Ok(None);
    }
    let mut told = Vec::new();
    for event in &events {
        let record = match tail.records.get(&event.order_id) {
            Some((record, _)) => Some(record.clone()),
            None => store.get(NOTIFIED, event.order_id.as_str())?,
        };
        if let Some((n, Some(workflow))) = told::told_of(record.as_ref(), store, event)? {
            if wanted.contains(&workflow) {
                told.push(n);
            }
        }
    }
    Ok(Some(told))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::consumer::CommitHeldBack;
    use crate::actors::notification::tests::{build, built};
    use crate::actors::notification::{ListNotifications, NotificationsAfter};
    use crate::actors::testing::{money, order, paid, placed, temp_store};
    use crate::domain::{CancelReason, EventKind, PaymentMethod};
    use actix::Actor;

    /// Order `n` canceled, and its payment refunded naming the cancel as
    /// the cause (its message gives the cancel's reason).
    fn canceled_and_refunded(t: &crate::actors::testing::TestStore, n: u64) {
        t.append(&order(n), vec![EventKind::OrderCanceled { reason: CancelReason::CustomerRequest }]);
        let cancel = t.store.head();
        let refund = EventKind::PaymentRefunded { amount: money(100) };
        t.store
            .write::<_, ()>(|tx| tx.append(&order(n), Some(cancel), refund.clone()))
            .map_err(|_| ())
            .unwrap();
    }

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
        canceled_and_refunded(&t, 1);
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

    /// A tail started on the store tells what the service publishes after
    /// it started, each once and in order, across the service's commits;
    /// and a backlog read from the store alone is the service's.
    #[actix::test]
    async fn a_tail_of_the_store_tells_what_the_service_publishes_and_its_backlog_is_the_services() {
        let t = temp_store();
        let (live, mut published) = tokio::sync::broadcast::channel(64);
        let an_hour = std::time::Duration::from_secs(3600);
        let n =
            built(&t, crate::config::Settings::default().webhooks, live).committing_every(an_hour).start();
        let workflows = Arc::new(Workflows::new(Default::default(), "shop"));
        let (card, none) = (PaymentMethod::Card, PaymentMethod::None);

        // Given an order told of, held back, before the tail starts.
        t.append(&order(1), vec![placed("kim", &[("A", 1, 100)], card)]);
        t.caught_up(NAME).await;
        let mut tail = Tail::start(&t.store.reader(), workflows.clone()).unwrap().unwrap();
        let mut heard = vec![published.recv().await.unwrap()];

        // When more happens to it and to another order, the service
        // commits, and more happens: a cancel and its refund.
        t.append(&order(1), vec![paid(100)]);
        t.append(&order(2), vec![placed("lee", &[("A", 1, 100)], none)]);
        t.caught_up(NAME).await;
        let mut told = tail.next(&t.store.reader(), 100).unwrap().0;
        n.send(CommitHeldBack).await.unwrap().unwrap();
        assert!(tail.next(&t.store.reader(), 100).unwrap().0.is_empty(), "nothing new");
        canceled_and_refunded(&t, 1);
        t.append(&order(2), vec![EventKind::OrderCanceled { reason: CancelReason::CustomerRequest }]);
        t.caught_up(NAME).await;
        let (more, goes_on) = tail.next(&t.store.reader(), 100).unwrap();
        told.extend(more);
        while let Ok(p) = published.try_recv() {
            heard.push(p);
        }

        // Then the tail told what the service published after it started.
        assert!(!goes_on);
        assert_eq!(told, heard[1..], "{told:?}");
        let statuses: Vec<&str> = told.iter().map(|(n, _)| n.status.as_str()).collect();
        assert_eq!(statuses, ["paid", "placed", "canceled", "canceled", "canceled"]);
        // And the backlog from the store alone is the service's.
        let shop = vec!["shop".to_owned()];
        let asked = NotificationsAfter { after: 0, workflows: shop.clone(), limit: 100 };
        let asked: Vec<Notification> =
            n.send(asked).await.unwrap().unwrap().notifications.into_iter().map(|p| p.0).collect();
        let reader = t.store.reader();
        assert_eq!(backlog_in(&reader, &workflows, &shop, 0, 100).unwrap(), Some(asked));
        assert_eq!(backlog_in(&reader, &workflows, &shop, 0, 2).unwrap(), None, "too long to read at once");
    }
}
