//! The status read side answered from a store the projection does not
//! run on: a failover follower's copy of the leader's
//! (`http::forward::reads`).
//!
//! What such a store holds is each view as the leader's projection last
//! committed it: the projection holds its views back for up to
//! `store.hold_back_ms`, and commits them with its log offset. The
//! events after that offset ([`Unfolded`]) are folded on top, exactly as
//! the projection folds them, so an order acknowledged a moment ago is there
//! and its status is the current one.

use super::{
    reported, status_prefix, ListByStatus, Page, StatusReport, BY_CUSTOMER, BY_STATUS, NAME, REJECTIONS,
    VIEWS,
};
use crate::domain::{CustomerId, Event, OrderId, Seq, StatusView, Workflows};
use crate::error::{NodeError, Refused};
use crate::store::{key_prefix, Reader, UNFOLDED_AT_MOST};
use std::collections::{BTreeMap, HashSet};

/// The events after the projection's committed offset.
struct Unfolded {
    events: Vec<Event>,
}

impl Unfolded {
    /// `None` past `at_most` events.
    fn read(store: &Reader<'_>, at_most: usize) -> Result<Option<Unfolded>, NodeError> {
        Ok(store.unfolded(NAME, at_most)?.map(|events| Unfolded { events }))
    }

    /// The order's report: `None` when the projection set one of its
    /// events aside (its later ones wait behind it there).
    fn report(
        &self,
        store: &Reader<'_>,
        workflows: &Workflows,
        id: &OrderId,
    ) -> Result<Option<StatusReport>, NodeError> {
        let needs_attention = store.dead_letters_of(id)?;
        if needs_attention.iter().any(|letter| letter.service == NAME) {
            return Ok(None);
        }
        let mut view: Option<StatusView> = store.get(VIEWS, id.as_str())?;
        let mut rejection = store.get(REJECTIONS, id.as_str())?;
        for event in self.events.iter().filter(|e| e.order_id == *id) {
            if let Some(reason) = event.kind.rejection() {
                rejection = Some(reason.to_owned());
            }
            view = StatusView::fold(view, event);
        }
        let view = view.ok_or_else(|| NodeError::not_found("order", id))?;
        let rejection = rejection.filter(|_| view.status.is_terminal());
        Ok(Some(reported(view, workflows, needs_attention, rejection)))
    }
}

/// An order's report (see the module docs); `None` when this store cannot
/// tell it (more than [`UNFOLDED_AT_MOST`] events unfolded, or one of the
/// order's set aside).
pub fn report_in(
    store: &Reader<'_>,
    workflows: &Workflows,
    id: &OrderId,
) -> Result<Option<StatusReport>, NodeError> {
    match Unfolded::read(store, UNFOLDED_AT_MOST)? {
        Some(unfolded) => unfolded.report(store, workflows, id),
        None => Ok(None),
    }
}

/// A customer's reports, oldest first, as the projection lists them;
/// `None` as for [`report_in`].
pub fn reports_of_in(
    store: &Reader<'_>,
    workflows: &Workflows,
    customer: &CustomerId,
) -> Result<Option<Vec<StatusReport>>, NodeError> {
    let Some(unfolded) = Unfolded::read(store, UNFOLDED_AT_MOST)? else { return Ok(None) };
    // Indexed when committed, in the order placed; those placed since
    // come after.
    let mut ids: Vec<OrderId> = store.scan_prefix(BY_CUSTOMER, key_prefix(customer.as_str()))?;
    let placed_since = unfolded.events.iter().filter_map(StatusView::start);
    ids.extend(placed_since.filter(|view| view.customer == *customer).map(|view| view.order_id));
    let mut reports = Vec::with_capacity(ids.len());
    for id in &ids {
        match unfolded.report(store, workflows, id)? {
            Some(report) => reports.push(report),
            None => return Ok(None),
        }
    }
    Ok(Some(reports))
}

/// A page of a workflow's orders at a status, as the projection pages
/// them; `None` as for [`report_in`]. The index, committed with the views,
/// says where each order stood then; the orders the unfolded events touch
/// may have moved since, onto this list or off it.
pub fn page_in(
    store: &Reader<'_>,
    workflows: &Workflows,
    q: &ListByStatus,
) -> Result<Option<Page>, NodeError> {
    workflows.get(&q.workflow)?;
    let Some(unfolded) = Unfolded::read(store, UNFOLDED_AT_MOST)? else { return Ok(None) };
    let mut listing = Listing { q, seen: HashSet::new(), listed: BTreeMap::new() };
    let prefix = status_prefix(&q.workflow, q.status);
    let start = [prefix.as_slice(), &(listing.after() + 1).to_be_bytes()].concat();
    for entry in store.entries_from(BY_STATUS, start)? {
        let (key, id) = entry?;
        // The first `limit + 1` still listed are all this page needs of
        // the index: those the events add are merged in below.
        if !key.starts_with(&prefix) || listing.listed.len() > q.limit {
            break;
        }
        if !listing.consider(&unfolded, store, workflows, id)? {
            return Ok(None);
        }
    }
    for event in &unfolded.events {
        if !listing.consider(&unfolded, store, workflows, event.order_id.clone())? {
            return Ok(None);
        }
    }
    let mut orders: Vec<StatusReport> = listing.listed.into_values().collect();
    let next = match orders.len() > q.limit {
        true => {
            orders.truncate(q.limit);
            orders.last().map(|r| r.view.placed_seq)
        }
        false => None,
    };
    Ok(Some(Page { orders, next }))
}

/// The orders of a page found so far, by the sequence that placed them.
struct Listing<'a> {
    q: &'a ListByStatus,
    seen: HashSet<OrderId>,
    listed: BTreeMap<Seq, StatusReport>,
}

impl Listing<'_> {
    fn after(&self) -> Seq {
        self.q.after.unwrap_or(0)
    }

    /// Lists the order if it belongs on the page; `false` if the store
    /// cannot tell its report.
    fn consider(
        &mut self,
        unfolded: &Unfolded,
        store: &Reader<'_>,
        workflows: &Workflows,
        id: OrderId,
    ) -> Result<bool, NodeError> {
        if self.seen.contains(&id) {
            return Ok(true);
        }
        self.seen.insert(id.clone());
        let report = match unfolded.report(store, workflows, &id) {
            Ok(Some(report)) => report,
            Ok(None) => return Ok(false),
            // An index entry with no view: nothing this page lists.
            Err(NodeError::Refused(Refused::NotFound { .. })) => return Ok(true),
            Err(e) => return Err(e),
        };
        if self.q.lists(&report.view) && report.view.placed_seq > self.after() {
            self.listed.insert(report.view.placed_seq, report);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::held_back;
    use super::super::{GetStatus, ListStatus};
    use super::*;
    use crate::actors::consumer::CommitHeldBack;
    use crate::actors::testing::{order, paid, placed, temp_store};
    use crate::domain::{EventKind, OrderStatus, PaymentMethod};
    use crate::error::Refused;

    /// A report read from the store alone (a failover follower's) is the
    /// projection's own, whether the views are held back or committed,
    /// and with events the projection has not committed folded on top.
    #[actix::test]
    async fn a_report_read_from_the_store_alone_is_the_projections() {
        let t = temp_store();
        let (workflows, p) = held_back(&t);
        let report = |id: u64| report_in(&t.store.reader(), &workflows, &order(id)).unwrap();
        let asked = |id: u64| p.send(GetStatus(order(id)));

        // Given orders whose views are held back, not in the store.
        t.append(&order(1), vec![placed("kim", &[("A", 1, 100)], PaymentMethod::Card), paid(100)]);
        t.append(&order(2), vec![placed("lee", &[("A", 1, 100)], PaymentMethod::Card)]);
        t.caught_up(NAME).await;
        assert_eq!(t.store.get(VIEWS, "ord-1").unwrap(), None);
        assert_eq!(report(1), Some(asked(1).await.unwrap().unwrap()), "folded from the log");

        // When the views are committed, and more happens after.
        p.send(CommitHeldBack).await.unwrap().unwrap();
        t.append(&order(1), vec![EventKind::OrderReserved { units: vec![] }]);
        let reason = "out of stock".to_owned();
        t.append(&order(2), vec![EventKind::OrderRejected { by: "shop".into(), reason }]);
        t.caught_up(NAME).await;

        // Then the store's view with what followed folded on, as asked.
        for id in [1, 2] {
            assert_eq!(report(id), Some(asked(id).await.unwrap().unwrap()));
        }
        assert_eq!(report(1).unwrap().view.status, OrderStatus::Reserved);
        assert_eq!(report(2).unwrap().rejection.as_deref(), Some("out of stock"));
        let missing = report_in(&t.store.reader(), &workflows, &order(9));
        assert!(matches!(missing, Err(NodeError::Refused(Refused::NotFound { .. }))), "{missing:?}");
        // A projection further behind than the fold allows: not answered here.
        assert!(Unfolded::read(&t.store.reader(), 1).unwrap().is_none());

        // A customer's list: committed views and those held back, in the
        // order placed, as the projection lists them.
        t.append(&order(3), vec![placed("kim", &[("A", 1, 100)], PaymentMethod::Card)]);
        t.caught_up(NAME).await;
        let kim = CustomerId::parse("kim").unwrap();
        let listed = reports_of_in(&t.store.reader(), &workflows, &kim).unwrap().unwrap();
        assert_eq!(listed, p.send(ListStatus(kim)).await.unwrap().unwrap());
        let ids: Vec<&str> = listed.iter().map(|r| r.view.order_id.as_str()).collect();
        assert_eq!(ids, ["ord-1", "ord-3"]);
    }

    /// A work list read from the store alone is the projection's, with the
    /// orders that moved since the views were committed moved on it too.
    #[actix::test]
    async fn a_page_read_from_the_store_alone_is_the_projections() {
        let t = temp_store();
        let (workflows, p) = held_back(&t);
        let card = PaymentMethod::Card;
        // Given three orders placed, their views committed.
        for n in 1..=3 {
            t.append(&order(n), vec![placed("kim", &[("A", 1, 100)], card)]);
        }
        t.caught_up(NAME).await;
        p.send(CommitHeldBack).await.unwrap().unwrap();
        // When one is paid and one more is placed, not committed yet.
        t.append(&order(2), vec![paid(100)]);
        t.append(&order(4), vec![placed("lee", &[("A", 1, 100)], card)]);
        t.caught_up(NAME).await;

        let q = |status: &str, after, limit| ListByStatus::of("shop", status, None, after, limit).unwrap();
        let page = |q: &ListByStatus| page_in(&t.store.reader(), &workflows, q).unwrap().unwrap();
        let ids = |page: &Page| page.orders.iter().map(|r| r.view.order_id.to_string()).collect::<Vec<_>>();
        for q in [q("placed", None, 10), q("paid", None, 10), q("placed", None, 2)] {
            let asked = p.send(q.clone()).await.unwrap().unwrap();
            assert_eq!(page(&q).orders, asked.orders, "{:?}", q.status);
        }
        // Then: paged, oldest first, the paid one off the list, the new one on.
        let first = page(&q("placed", None, 2));
        assert_eq!(ids(&first), ["ord-1", "ord-3"]);
        let rest = page(&q("placed", first.next, 2));
        assert_eq!((ids(&rest), rest.next), (vec!["ord-4".to_owned()], None));
        assert_eq!(ids(&page(&q("paid", None, 10))), ["ord-2"]);
    }

    /// A page ends with a cursor only when more orders are listed after
    /// it, on the leader as from the store: with a leg asked for, orders
    /// on another leg of the same status are not.
    #[actix::test]
    async fn a_page_gives_a_cursor_only_when_more_orders_are_listed_after_it() {
        let t = temp_store();
        let (workflows, p) = held_back(&t);
        let card = PaymentMethod::Card;
        // Given two orders on their way, on two legs.
        for (n, leg) in [(1, "shipping"), (2, "customs")] {
            let (delivery_id, name) = (format!("d{n}"), leg.to_owned());
            let started =
                EventKind::LegStarted { delivery_id: delivery_id.clone(), leg: 0, name: name.clone() };
            let on_its_way = EventKind::OrderInDelivery { delivery_id, leg: 0, name };
            t.append(&order(n), vec![placed("kim", &[("A", 1, 100)], card), started, on_its_way]);
        }
        t.caught_up(NAME).await;
        p.send(CommitHeldBack).await.unwrap().unwrap();

        // When a page of one order on the first leg is asked for.
        let q = ListByStatus::of("shop", "in_delivery", Some("shipping"), None, 1).unwrap();
        let asked = p.send(q.clone()).await.unwrap().unwrap();

        // Then it is the last: the order on the other leg is not listed after it.
        let ids: Vec<String> = asked.orders.iter().map(|r| r.view.order_id.to_string()).collect();
        assert_eq!((ids, asked.next), (vec!["ord-1".to_owned()], None));
        assert_eq!(page_in(&t.store.reader(), &workflows, &q).unwrap(), Some(asked));
    }
}
