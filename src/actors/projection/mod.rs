//! The projection service: the status view of every order (CQRS read side),
//! built only from events. Views are written behind
//! ([`super::write_behind`]): folded in memory, read from there at once, and
//! committed every so often together with the projection's log offset, in
//! one transaction, so no event is ever applied twice, and the view can be
//! rebuilt from the log at any time.

use super::consumer::{catch_up, Cursor, Delivery, LogConsumer};
use super::supervision::guarded;
use super::write_behind::WriteBehind;
use super::ServiceEnv;
use crate::domain::Workflows;
use crate::domain::{CustomerId, Event, OrderId, OrderStatus, Seq, StatusView};
use crate::error::{NodeError, Refused};
use crate::store::{key_prefix, DeadLetter, Table, Tx, TxResult};
use actix::prelude::*;
use serde::Serialize;
use std::sync::Arc;

mod from_store;

pub use from_store::{page_in, report_in, reports_of_in};

// ---- messages ----

/// The status report of one order: its view and what needs attention.
#[derive(Message)]
#[rtype(result = "Result<StatusReport, NodeError>")]
pub struct GetStatus(pub OrderId);

/// Every dead letter, oldest first.
#[derive(Message)]
#[rtype(result = "Result<Vec<DeadLetter>, NodeError>")]
pub struct ListDeadLetters;

#[derive(Message)]
#[rtype(result = "Result<DeadLetter, NodeError>")]
pub struct GetDeadLetter(pub u64);

/// An order's status view, plus the events about it that a service set
/// aside: an order with any needs an operator's attention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StatusReport {
    #[serde(flatten)]
    pub view: StatusView,
    /// How the order's workflow names its status ("dispatched").
    pub label: String,
    pub needs_attention: Vec<DeadLetter>,
    /// Why it was turned down, in the words of whoever did: the hotel
    /// declining, customs rejecting the goods ("prohibited item").
    pub rejection: Option<String>,
}

/// The status views of a customer's orders, oldest first.
#[derive(Message)]
#[rtype(result = "Result<Vec<StatusReport>, NodeError>")]
pub struct ListStatus(pub CustomerId);

/// A page of a workflow's orders at a status (a party's work list: the
/// taxi's open calls, the hotel's bookings to confirm), oldest first.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Page, NodeError>")]
pub struct ListByStatus {
    pub workflow: String,
    pub status: OrderStatus,
    /// Only orders whose delivery is at this leg.
    pub leg: Option<String>,
    /// Continue after this cursor (a previous page's `next`).
    pub after: Option<Seq>,
    pub limit: usize,
}

impl ListByStatus {
    /// The query as a request gives it, checked: a status the engine
    /// names, a limit from 1 to [`MAX_PAGE`].
    pub fn of(
        workflow: &str,
        status: &str,
        leg: Option<&str>,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<ListByStatus, NodeError> {
        let status = OrderStatus::parse(status).ok_or_else(|| {
            let all: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
            NodeError::Refused(Refused::Invalid(format!(
                "status must be one of {} (got {status:?})",
                all.join(", ")
            )))
        })?;
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(NodeError::Refused(Refused::Invalid(format!("limit must be 1 to {MAX_PAGE}"))));
        }
        Ok(ListByStatus { workflow: workflow.to_owned(), status, leg: leg.map(str::to_owned), after, limit })
    }

    /// Whether `view` belongs on this list (past `after` or not).
    fn lists(&self, view: &StatusView) -> bool {
        let leg = view.delivery.as_ref().and_then(|d| d.leg.as_deref());
        view.workflow == self.workflow
            && view.status == self.status
            && (self.leg.is_none() || self.leg.as_deref() == leg)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Page {
    pub orders: Vec<StatusReport>,
    /// The cursor for the next page; none when this is the last.
    pub next: Option<Seq>,
}

pub struct ProjectionActor {
    cursor: Cursor,
    workflows: Arc<Workflows>,
    /// Views and indexes written behind: folded in memory, committed
    /// together every so often.
    behind: WriteBehind,
}

pub(crate) const VIEWS: Table<StatusView> = Table::new("status_views");
/// Why an order was turned down (a key only for those that were): kept
/// apart from the view, whose stored shape it would change.
const REJECTIONS: Table<String> = Table::new("status_rejections");
/// `customer \0 placed_seq` → order id.
const BY_CUSTOMER: Table<OrderId> = Table::new("status_by_customer");
/// `workflow \0 status \0 placed_seq` → order id.
const BY_STATUS: Table<OrderId> = Table::new("status_by_workflow");
/// Longest page of a list.
pub const MAX_PAGE: usize = 500;
/// Views (and rejections) read from the store and kept for the next status
/// reads, a generation: the orders being asked about, a few MiB.
const READ_CACHE: usize = 4096;
/// The tables whose values are kept: only the projection writes them.
const KEPT: &[&str] = &[VIEWS.name(), REJECTIONS.name()];
pub const NAME: &str = crate::service::Service::Projection.name();

impl ProjectionActor {
    pub fn new(env: &ServiceEnv, workflows: Arc<Workflows>) -> Result<Self, NodeError> {
        let cursor = Cursor::load(env, NAME)?;
        let behind = WriteBehind::new(env, NAME).caching(READ_CACHE, KEPT);
        Ok(ProjectionActor { cursor, workflows, behind })
    }

    /// Holds views back for `every` instead (tests that look before the
    /// commit).
    pub fn committing_every(self, every: std::time::Duration) -> Self {
        ProjectionActor { behind: self.behind.every(every), ..self }
    }

    /// A value of the read model, staged or committed.
    fn get<V: serde::de::DeserializeOwned>(
        &self,
        table: Table<V>,
        key: &str,
    ) -> Result<Option<V>, NodeError> {
        self.behind.get(table, key)
    }

    /// An order's report. A view that is not found may be one not folded
    /// yet (an order acknowledged a moment ago, or views being folded again
    /// after the store was reopened): the projection catches up with the
    /// log before it answers that there is no such order.
    fn report(&mut self, id: &OrderId) -> Result<StatusReport, NodeError> {
        if let Some(view) = self.get(VIEWS, id.as_str())? {
            return self.with_label(view);
        }
        catch_up(self)?;
        let view: StatusView =
            self.get(VIEWS, id.as_str())?.ok_or_else(|| NodeError::not_found("order", id))?;
        self.with_label(view)
    }

    /// Adds the workflow's label and anything needing attention.
    fn with_label(&self, view: StatusView) -> Result<StatusReport, NodeError> {
        let needs_attention = self.cursor.store.dead_letters_of(&view.order_id)?;
        // Only an order that ended can have been turned down.
        let rejection = match view.status.is_terminal() {
            true => self.get(REJECTIONS, view.order_id.as_str())?,
            false => None,
        };
        Ok(reported(view, &self.workflows, needs_attention, rejection))
    }

    fn list(&self, customer: &CustomerId) -> Result<Vec<StatusReport>, NodeError> {
        let mut reports = Vec::new();
        let prefix = key_prefix(customer.as_str());
        for entry in self.behind.entries_from(BY_CUSTOMER, &prefix)? {
            let (key, id) = entry?;
            if !key.starts_with(&prefix) {
                break;
            }
            if let Some(view) = self.get(VIEWS, id.as_str())? {
                reports.push(self.with_label(view)?);
            }
        }
        Ok(reports)
    }

    fn page(&self, q: &ListByStatus) -> Result<Page, NodeError> {
        self.workflows.get(&q.workflow)?;
        let prefix = status_prefix(&q.workflow, q.status);
        let start = match q.after {
            Some(after) => [prefix.as_slice(), &(after + 1).to_be_bytes()].concat(),
            None => prefix.clone(),
        };
        let (mut orders, mut next) = (Vec::new(), None);
        for entry in self.behind.entries_from(BY_STATUS, start)? {
            let (key, id) = entry?;
            if !key.starts_with(&prefix) {
                break;
            }
            let Some(view) = self.get(VIEWS, id.as_str())? else { continue };
            if !q.lists(&view) {
                continue;
            }
            // A cursor only when one more is listed: the index is by
            // status, and those on another leg (or moved on) are not.
            if orders.len() == q.limit {
                next = orders.last().map(|r: &StatusReport| r.view.placed_seq);
                break;
            }
            orders.push(self.with_label(view)?);
        }
        Ok(Page { orders, next })
    }
}

/// A view as reported: with its workflow's label for its status.
fn reported(
    view: StatusView,
    workflows: &Workflows,
    needs_attention: Vec<DeadLetter>,
    rejection: Option<String>,
) -> StatusReport {
    let label = match workflows.get(&view.workflow) {
        Ok(wf) => wf.label(view.status),
        Err(_) => view.status.as_str().to_owned(),
    };
    StatusReport { view, label, needs_attention, rejection }
}

/// `workflow \0 status \0`: a workflow's orders at one status.
fn status_prefix(workflow: &str, status: OrderStatus) -> Vec<u8> {
    let mut key = key_prefix(workflow);
    key.extend(key_prefix(status.as_str()));
    key
}

/// `workflow \0 status \0 placed_seq`: kept in placing order.
fn status_key(workflow: &str, status: OrderStatus, placed_seq: Seq) -> Vec<u8> {
    let mut key = status_prefix(workflow, status);
    key.extend_from_slice(&placed_seq.to_be_bytes());
    key
}

crate::log_consumer!(ProjectionActor);

impl LogConsumer for ProjectionActor {
    fn cursor(&mut self) -> &mut Cursor {
        &mut self.cursor
    }

    fn behind(&mut self) -> Option<&mut WriteBehind> {
        Some(&mut self.behind)
    }

    fn apply_batch(&mut self, batch: &[Event], delivery: Delivery) -> Result<(), NodeError> {
        self.behind.apply(&self.cursor, batch, delivery, |tx, event, _| on_event(tx, event))?;
        let metrics = self.cursor.sup.metrics();
        for status in batch.iter().filter_map(|e| e.kind.status()) {
            metrics.orders.with_label_values(&[status.as_str()]).inc();
        }
        Ok(())
    }
}

fn on_event(tx: &mut Tx<'_>, event: &Event) -> TxResult<(), NodeError> {
    let key = event.order_id.as_str();
    if let Some(reason) = event.kind.rejection() {
        tx.put(REJECTIONS, key, &reason.to_owned())?;
    }
    // The placing event starts the view, and no view comes before it: one
    // is committed only with an offset past the event that started it, an
    // event is folded once, and an order's later events wait behind it when
    // it is set aside. So the store is not asked for a view it cannot have
    // (a read that would wait for any commit under way).
    if let Some(view) = StatusView::start(event) {
        // Indexed by the placing event's sequence: oldest order first.
        let mut index = key_prefix(view.customer.as_str());
        index.extend_from_slice(&event.seq.to_be_bytes());
        tx.put(BY_CUSTOMER, index, &view.order_id)?;
        tx.put(BY_STATUS, status_key(&view.workflow, view.status, view.placed_seq), &view.order_id)?;
        return tx.put(VIEWS, key, &view);
    }
    let Some(mut view) = tx.get::<StatusView, _>(VIEWS, key)? else {
        return Ok(());
    };
    let before = view.status;
    view.apply(event);
    if view.status != before {
        tx.remove(BY_STATUS, status_key(&view.workflow, before, view.placed_seq))?;
        tx.put(BY_STATUS, status_key(&view.workflow, view.status, view.placed_seq), &view.order_id)?;
    }
    tx.put(VIEWS, key, &view)
}

impl Handler<GetStatus> for ProjectionActor {
    type Result = Result<StatusReport, NodeError>;

    fn handle(&mut self, msg: GetStatus, ctx: &mut Context<Self>) -> Self::Result {
        let report = guarded(self, ctx, Some(&msg.0), |act| act.report(&msg.0));
        super::consumer::schedule_pending(self, ctx);
        report
    }
}

impl Handler<ListByStatus> for ProjectionActor {
    type Result = Result<Page, NodeError>;

    fn handle(&mut self, msg: ListByStatus, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, None, |act| act.page(&msg))
    }
}

impl Handler<ListStatus> for ProjectionActor {
    type Result = Result<Vec<StatusReport>, NodeError>;

    fn handle(&mut self, msg: ListStatus, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, None, |act| act.list(&msg.0))
    }
}

impl Handler<ListDeadLetters> for ProjectionActor {
    type Result = Result<Vec<DeadLetter>, NodeError>;

    fn handle(&mut self, _: ListDeadLetters, _: &mut Context<Self>) -> Self::Result {
        Ok(self.cursor.store.dead_letters()?)
    }
}

impl Handler<GetDeadLetter> for ProjectionActor {
    type Result = Result<DeadLetter, NodeError>;

    fn handle(&mut self, msg: GetDeadLetter, _: &mut Context<Self>) -> Self::Result {
        self.cursor.store.dead_letter(msg.0)?.ok_or_else(|| NodeError::not_found("dead letter", msg.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::consumer::CommitHeldBack;
    use crate::actors::testing::{order, paid, placed, temp_store, TestStore};
    use crate::domain::{EventKind, OrderStatus, PaymentMethod};
    use crate::error::Refused;

    /// The shop's workflows, and a projection on `t` that holds its views
    /// back for an hour (until told to commit).
    pub(super) fn held_back(t: &TestStore) -> (Arc<Workflows>, Addr<ProjectionActor>) {
        let workflows =
            Arc::new(Workflows::new([("shop".to_owned(), crate::domain::Workflow::shop())].into(), "shop"));
        let an_hour = std::time::Duration::from_secs(3600);
        let p = ProjectionActor::new(&t.env(), workflows.clone()).unwrap().committing_every(an_hour).start();
        (workflows, p)
    }

    #[actix::test]
    async fn the_view_is_built_from_events_and_listed_by_customer() {
        let t = temp_store();
        let workflows = Workflows::new([("shop".to_owned(), crate::domain::Workflow::shop())].into(), "shop");
        let p = ProjectionActor::new(&t.env(), Arc::new(workflows)).unwrap().start();
        t.append(&order(2), vec![placed("kim", &[("A", 1, 100)], PaymentMethod::Card), paid(100)]);
        t.append(&order(1), vec![placed("kim", &[("A", 2, 100)], PaymentMethod::Card)]);
        t.append(&order(3), vec![placed("lee", &[("A", 1, 100)], PaymentMethod::Card)]);
        t.append(&order(2), vec![EventKind::OrderReserved { units: vec![] }]);
        t.caught_up(NAME).await;
        let view = p.send(GetStatus(order(2))).await.unwrap().unwrap().view;
        assert_eq!(view.status, OrderStatus::Reserved);
        assert_eq!(view.history.len(), 3);
        let kim = p.send(ListStatus(CustomerId::parse("kim").unwrap())).await.unwrap().unwrap();
        let ids: Vec<&str> = kim.iter().map(|r| r.view.order_id.as_str()).collect();
        assert_eq!(ids, ["ord-2", "ord-1"], "in the order they were placed");
        let query = |after| ListByStatus {
            workflow: "shop".into(),
            status: OrderStatus::Placed,
            leg: None,
            after,
            limit: 1,
        };
        let first = p.send(query(None)).await.unwrap().unwrap();
        assert_eq!(first.orders[0].view.order_id.as_str(), "ord-1", "ord-2 moved on to reserved");
        assert_eq!(first.orders[0].label, "placed");
        let second = p.send(query(first.next)).await.unwrap().unwrap();
        assert_eq!(second.orders[0].view.order_id.as_str(), "ord-3");
        assert_eq!(second.next, None);
        assert!(matches!(
            p.send(GetStatus(order(9))).await.unwrap(),
            Err(NodeError::Refused(Refused::NotFound { .. }))
        ));
    }

    /// An order acknowledged a moment ago has its view at once: a view not
    /// found is looked for again after catching up with the log.
    #[actix::test]
    async fn a_view_not_folded_yet_is_folded_before_the_answer() {
        let t = temp_store();
        let workflows =
            Arc::new(Workflows::new([("shop".to_owned(), crate::domain::Workflow::shop())].into(), "shop"));
        let p = ProjectionActor::new(&t.env(), workflows).unwrap().start();
        t.caught_up(NAME).await;
        for n in 1..=3 {
            t.append(&order(n), vec![placed("kim", &[("A", 1, 100)], PaymentMethod::Card)]);
            let report = p.send(GetStatus(order(n))).await.unwrap();
            assert_eq!(report.map(|r| r.view.status).ok(), Some(OrderStatus::Placed), "order {n}");
        }
        let missing = p.send(GetStatus(order(9))).await.unwrap();
        assert!(matches!(missing, Err(NodeError::Refused(Refused::NotFound { .. }))), "{missing:?}");
    }

    /// Views are written behind: read at once, committed once for all the
    /// statuses they went through, with the offset; a projection started
    /// again before the commit folds the same events into the same views.
    #[actix::test]
    async fn views_are_read_at_once_committed_once_and_folded_again_after_a_crash() {
        let t = temp_store();
        let (workflows, p) = held_back(&t);
        for n in 1..=3 {
            t.append(&order(n), vec![placed("kim", &[("A", 1, 100)], PaymentMethod::Card)]);
        }
        for n in 1..=3 {
            t.append(&order(n), vec![paid(100)]);
            t.append(&order(n), vec![EventKind::OrderReserved { units: vec![] }]);
        }
        t.caught_up(NAME).await;
        let seen = p.send(GetStatus(order(2))).await.unwrap().unwrap().view;
        assert_eq!((seen.status, seen.history.len()), (OrderStatus::Reserved, 3), "read at once");
        assert_eq!(t.store.get(VIEWS, "ord-2").unwrap(), None, "not written yet");
        assert_eq!(t.store.offset(NAME).unwrap(), 0);

        // A second instance, as after a crash: it folds the log again from
        // the committed offset, and gets the same views.
        let an_hour = std::time::Duration::from_secs(3600);
        let again = ProjectionActor::new(&t.env(), workflows).unwrap().committing_every(an_hour).start();
        t.caught_up(NAME).await;
        let refolded = again.send(GetStatus(order(2))).await.unwrap().unwrap().view;
        assert_eq!(refolded, seen, "nothing lost, nothing applied twice");

        let before = t.store.writer_stats().read();
        again.send(CommitHeldBack).await.unwrap().unwrap();
        let written = t.store.writer_stats().read();
        assert_eq!(written.commits - before.commits, 1);
        let views = written.by_table.get("status_views").copied().unwrap_or(0)
            - before.by_table.get("status_views").copied().unwrap_or(0);
        assert_eq!(views, 3, "one write a view, for three statuses each");
        assert_eq!(t.store.get(VIEWS, "ord-2").unwrap(), Some(seen));
        assert_eq!(t.store.offset(NAME).unwrap(), t.store.head());
        let reserved = p.send(ListByStatus {
            workflow: "shop".into(),
            status: OrderStatus::Reserved,
            leg: None,
            after: None,
            limit: 10,
        });
        assert_eq!(reserved.await.unwrap().unwrap().orders.len(), 3);
    }
}
