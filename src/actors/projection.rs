//! The projection service: the status view of every order (CQRS read side),
//! built only from events. The view and the projection's log offset are
//! committed in one transaction, so no event is ever applied twice, and the
//! view can be rebuilt from the log at any time.

use super::consumer::{Cursor, Delivery, LogConsumer};
use super::supervision::guarded;
use super::{NodeError, ServiceEnv};
use crate::domain::{CustomerId, Event, OrderId, StatusView};
use crate::store::{key_prefix, read, DeadLetter, StoreError, Tx, TxResult};
use actix::prelude::*;
use serde::Serialize;
use sled::Tree;

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    #[serde(flatten)]
    pub view: StatusView,
    pub needs_attention: Vec<DeadLetter>,
}

/// The status views of a customer's orders, oldest first.
#[derive(Message)]
#[rtype(result = "Result<Vec<StatusView>, NodeError>")]
pub struct ListStatus(pub CustomerId);

pub struct ProjectionActor {
    cursor: Cursor,
    views: Tree,
    by_customer: Tree,
}

const VIEWS: usize = 0;
const BY_CUSTOMER: usize = 1;
pub const NAME: &str = "projection";

impl ProjectionActor {
    pub fn new(env: &ServiceEnv) -> Result<Self, NodeError> {
        Ok(ProjectionActor {
            views: env.store.tree("status_views")?,
            by_customer: env.store.tree("status_by_customer")?,
            cursor: Cursor::load(env, NAME)?,
        })
    }

    fn report(&self, id: &OrderId) -> Result<StatusReport, NodeError> {
        let view: StatusView =
            read(&self.views, id.as_str())?.ok_or_else(|| NodeError::not_found("order", id))?;
        let needs_attention = self.cursor.store.dead_letters_of(id)?;
        Ok(StatusReport { view, needs_attention })
    }

    fn list(&self, customer: &CustomerId) -> Result<Vec<StatusView>, NodeError> {
        let mut views = Vec::new();
        for entry in self.by_customer.scan_prefix(key_prefix(customer.as_str())) {
            let id: OrderId =
                crate::store::decode(&entry.map_err(StoreError::from)?.1).map_err(StoreError::from)?;
            if let Some(view) = read(&self.views, id.as_str())? {
                views.push(view);
            }
        }
        Ok(views)
    }
}

crate::log_consumer!(ProjectionActor);

impl LogConsumer for ProjectionActor {
    fn cursor(&mut self) -> &mut Cursor {
        &mut self.cursor
    }

    fn apply_batch(&mut self, batch: &[Event], delivery: Delivery) -> Result<(), NodeError> {
        self.cursor.apply(&[&self.views, &self.by_customer], batch, delivery, on_event)?;
        let metrics = self.cursor.sup.metrics();
        for status in batch.iter().filter_map(|e| e.kind.status()) {
            metrics.orders.with_label_values(&[status.as_str()]).inc();
        }
        Ok(())
    }
}

fn on_event(tx: &mut Tx<'_>, event: &Event) -> TxResult<(), NodeError> {
    let key = event.order_id.as_str();
    match tx.get::<StatusView, _>(VIEWS, key)? {
        Some(mut view) => {
            view.apply(event);
            tx.put(VIEWS, key, &view)
        }
        None => {
            let Some(view) = StatusView::start(event) else {
                return Ok(());
            };
            // Indexed by the placing event's sequence: oldest order first.
            let mut index = key_prefix(view.customer.as_str());
            index.extend_from_slice(&event.seq.to_be_bytes());
            tx.put(BY_CUSTOMER, index, &view.order_id)?;
            tx.put(VIEWS, key, &view)
        }
    }
}

impl Handler<GetStatus> for ProjectionActor {
    type Result = Result<StatusReport, NodeError>;

    fn handle(&mut self, msg: GetStatus, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, Some(&msg.0), |act| act.report(&msg.0))
    }
}

impl Handler<ListStatus> for ProjectionActor {
    type Result = Result<Vec<StatusView>, NodeError>;

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
    use crate::actors::testing::{order, paid, placed, temp_store};
    use crate::domain::{EventKind, OrderStatus, PaymentMethod};

    #[actix::test]
    async fn the_view_is_built_from_events_and_listed_by_customer() {
        let t = temp_store();
        let p = ProjectionActor::new(&t.env()).unwrap().start();
        t.append(&order(2), vec![placed("kim", &[("A", 1, 100)], PaymentMethod::Card), paid(100)]);
        t.append(&order(1), vec![placed("kim", &[("A", 2, 100)], PaymentMethod::Card)]);
        t.append(&order(3), vec![placed("lee", &[("A", 1, 100)], PaymentMethod::Card)]);
        t.append(&order(2), vec![EventKind::OrderReserved]);
        t.caught_up(NAME).await;
        let view = p.send(GetStatus(order(2))).await.unwrap().unwrap().view;
        assert_eq!(view.status, OrderStatus::Reserved);
        assert_eq!(view.history.len(), 3);
        let kim = p.send(ListStatus(CustomerId::parse("kim").unwrap())).await.unwrap().unwrap();
        let ids: Vec<&str> = kim.iter().map(|v| v.order_id.as_str()).collect();
        assert_eq!(ids, ["ord-2", "ord-1"], "in the order they were placed");
        assert!(matches!(p.send(GetStatus(order(9))).await.unwrap(), Err(NodeError::NotFound { .. })));
    }
}
