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

use super::{reported, StatusReport, BY_CUSTOMER, NAME, REJECTIONS, VIEWS};
use crate::domain::{CustomerId, Event, OrderId, StatusView, Workflows};
use crate::error::NodeError;
use crate::store::{key_prefix, Reader};

/// The most events a read from the store folds after the projection's
/// committed offset: about `store.hold_back_ms` of them normally. A
/// projection further behind (paused, or failing) gives `None`, and the
/// node that runs it answers instead.
pub const UNFOLDED_AT_MOST: usize = 20_000;

/// The events after the projection's committed offset.
struct Unfolded {
    events: Vec<Event>,
}

impl Unfolded {
    /// `None` past `at_most` events.
    fn read(store: &Reader<'_>, at_most: usize) -> Result<Option<Unfolded>, NodeError> {
        let mut after = store.offset(NAME)?;
        let mut events = Vec::new();
        loop {
            let more = store.read_log(after, 1024)?;
            let Some(last) = more.last() else { return Ok(Some(Unfolded { events })) };
            after = last.seq;
            events.extend(more);
            if events.len() > at_most {
                return Ok(None);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::super::{GetStatus, ListStatus, ProjectionActor};
    use super::*;
    use crate::actors::consumer::CommitHeldBack;
    use crate::actors::testing::{order, paid, placed, temp_store};
    use crate::domain::{EventKind, OrderStatus, PaymentMethod};
    use crate::error::Refused;
    use actix::Actor;
    use std::sync::Arc;

    /// A report read from the store alone (a failover follower's) is the
    /// projection's own, whether the views are held back or committed,
    /// and with events the projection has not committed folded on top.
    #[actix::test]
    async fn a_report_read_from_the_store_alone_is_the_projections() {
        let t = temp_store();
        let workflows =
            Arc::new(Workflows::new([("shop".to_owned(), crate::domain::Workflow::shop())].into(), "shop"));
        let an_hour = std::time::Duration::from_secs(3600);
        let p = ProjectionActor::new(&t.env(), workflows.clone()).unwrap().committing_every(an_hour).start();
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
}
