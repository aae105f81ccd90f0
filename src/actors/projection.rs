//! The projection service: the status view of every order (CQRS read side),
//! built only from events. The view and the projection's log offset are
//! committed in one transaction, so no event is ever applied twice, and the
//! view can be rebuilt from the log at any time.

use super::consumer::{Cursor, LogConsumer};
use super::health::Health;
use super::NodeError;
use crate::domain::{CustomerId, Event, OrderId, StatusView};
use crate::store::{key_prefix, read, Store, StoreError, Tx, TxResult};
use actix::prelude::*;
use sled::Tree;

// ---- messages ----

/// The status view of one order.
#[derive(Message)]
#[rtype(result = "Result<StatusView, NodeError>")]
pub struct GetStatus(pub OrderId);

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
    pub fn new(store: Store, health: Health) -> Result<Self, NodeError> {
        Ok(ProjectionActor {
            views: store.tree("status_views")?,
            by_customer: store.tree("status_by_customer")?,
            cursor: Cursor::load(store, NAME, health)?,
        })
    }
}

crate::log_consumer!(ProjectionActor);

impl LogConsumer for ProjectionActor {
    fn cursor(&mut self) -> &mut Cursor {
        &mut self.cursor
    }

    fn apply_batch(&mut self, batch: &[Event]) -> Result<(), NodeError> {
        self.cursor.apply(&[&self.views, &self.by_customer], batch, on_event)?;
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
    type Result = Result<StatusView, NodeError>;

    fn handle(&mut self, msg: GetStatus, _: &mut Context<Self>) -> Self::Result {
        read(&self.views, msg.0.as_str())?.ok_or_else(|| NodeError::not_found("order", &msg.0))
    }
}

impl Handler<ListStatus> for ProjectionActor {
    type Result = Result<Vec<StatusView>, NodeError>;

    fn handle(&mut self, msg: ListStatus, _: &mut Context<Self>) -> Self::Result {
        let mut views = Vec::new();
        for entry in self.by_customer.scan_prefix(key_prefix(msg.0.as_str())) {
            let id: OrderId =
                crate::store::decode(&entry.map_err(StoreError::from)?.1).map_err(StoreError::from)?;
            if let Some(view) = read(&self.views, id.as_str())? {
                views.push(view);
            }
        }
        Ok(views)
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
        let p = ProjectionActor::new(t.store.clone(), t.health.clone()).unwrap().start();
        t.append(&order(2), vec![placed("kim", &[("A", 1, 100)], PaymentMethod::Card), paid(100)]);
        t.append(&order(1), vec![placed("kim", &[("A", 2, 100)], PaymentMethod::Card)]);
        t.append(&order(3), vec![placed("lee", &[("A", 1, 100)], PaymentMethod::Card)]);
        t.append(&order(2), vec![EventKind::OrderReserved]);
        t.caught_up(NAME).await;
        let view = p.send(GetStatus(order(2))).await.unwrap().unwrap();
        assert_eq!(view.status, OrderStatus::Reserved);
        assert_eq!(view.history.len(), 3);
        let kim = p.send(ListStatus(CustomerId::parse("kim").unwrap())).await.unwrap().unwrap();
        let ids: Vec<&str> = kim.iter().map(|v| v.order_id.as_str()).collect();
        assert_eq!(ids, ["ord-2", "ord-1"], "in the order they were placed");
        assert!(matches!(p.send(GetStatus(order(9))).await.unwrap(), Err(NodeError::NotFound { .. })));
    }
}
