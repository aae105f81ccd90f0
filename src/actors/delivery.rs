//! The delivery service: starts a delivery when an order's goods are
//! reserved and completes it when the courier reports the drop-off.

use super::consumer::{catch_up, Cursor, Delivery as Mode, LogConsumer};
use super::supervision::guarded;
use super::{durably, NodeError, ServiceEnv};
use crate::domain::{Event, EventKind, OrderId};
use crate::store::{abort, read, Tx, TxResult};
use actix::prelude::*;
use serde::{Deserialize, Serialize};
use sled::Tree;

// ---- messages ----

/// The courier reports that the order's delivery arrived.
#[derive(Message)]
#[rtype(result = "Result<Delivery, NodeError>")]
pub struct CompleteDelivery(pub OrderId);

#[derive(Message)]
#[rtype(result = "Result<Delivery, NodeError>")]
pub struct GetDelivery(pub OrderId);

// ---- state ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub order_id: OrderId,
    pub state: DeliveryStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// The order exists; its goods are not ready yet.
    Awaiting,
    InTransit,
    Delivered,
    /// The order was canceled before the goods left.
    Canceled,
}

pub struct DeliveryActor {
    cursor: Cursor,
    deliveries: Tree,
}

const DELIVERIES: usize = 0;
pub const NAME: &str = "delivery";

impl DeliveryActor {
    pub fn new(env: &ServiceEnv) -> Result<Self, NodeError> {
        Ok(DeliveryActor { deliveries: env.store.tree("deliveries")?, cursor: Cursor::load(env, NAME)? })
    }

    fn complete(&mut self, order_id: &OrderId) -> Result<Delivery, NodeError> {
        catch_up(self)?;
        let (delivery, _) = self.cursor.store.write(&[&self.deliveries], |tx| {
            let Some(mut d) = tx.get::<Delivery, _>(DELIVERIES, order_id.as_str())? else {
                return abort(NodeError::not_found("order", order_id));
            };
            if d.state != DeliveryStatus::InTransit {
                return abort(NodeError::Conflict(format!(
                    "the delivery of order {order_id} is {:?}, not in transit",
                    d.state
                )));
            }
            d.state = DeliveryStatus::Delivered;
            tx.put(DELIVERIES, order_id.as_str(), &d)?;
            tx.append(order_id, None, EventKind::DeliveryCompleted { delivery_id: d.id.clone() })?;
            Ok(d)
        })?;
        Ok(delivery)
    }
}

crate::log_consumer!(DeliveryActor);

impl LogConsumer for DeliveryActor {
    fn cursor(&mut self) -> &mut Cursor {
        &mut self.cursor
    }

    fn apply_batch(&mut self, batch: &[Event], mode: Mode) -> Result<(), NodeError> {
        self.cursor.apply(&[&self.deliveries], batch, mode, on_event)?;
        Ok(())
    }
}

fn on_event(tx: &mut Tx<'_>, event: &Event) -> TxResult<(), NodeError> {
    let key = event.order_id.as_str();
    let delivery: Option<Delivery> = tx.get(DELIVERIES, key)?;
    match (&event.kind, delivery) {
        (EventKind::OrderPlaced { .. }, None) => {
            let d = Delivery {
                id: format!("dlv-{}", event.order_id),
                order_id: event.order_id.clone(),
                state: DeliveryStatus::Awaiting,
            };
            tx.put(DELIVERIES, key, &d)
        }
        (EventKind::OrderReserved, Some(mut d)) if d.state == DeliveryStatus::Awaiting => {
            d.state = DeliveryStatus::InTransit;
            tx.put(DELIVERIES, key, &d)?;
            tx.append(&event.order_id, Some(event.seq), EventKind::DeliveryStarted { delivery_id: d.id })?;
            Ok(())
        }
        (EventKind::OrderCanceled { .. }, Some(mut d)) if d.state == DeliveryStatus::Awaiting => {
            d.state = DeliveryStatus::Canceled;
            tx.put(DELIVERIES, key, &d)
        }
        _ => Ok(()),
    }
}

impl Handler<CompleteDelivery> for DeliveryActor {
    type Result = ResponseFuture<Result<Delivery, NodeError>>;

    fn handle(&mut self, msg: CompleteDelivery, ctx: &mut Context<Self>) -> Self::Result {
        let result = guarded(self, ctx, Some(&msg.0), |act| act.complete(&msg.0));
        durably(&self.cursor.store, result)
    }
}

impl Handler<GetDelivery> for DeliveryActor {
    type Result = Result<Delivery, NodeError>;

    fn handle(&mut self, msg: GetDelivery, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, Some(&msg.0), |act| {
            read(&act.deliveries, msg.0.as_str())?
                .ok_or_else(|| NodeError::not_found("delivery for order", &msg.0))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::testing::{order, placed, temp_store};
    use crate::domain::PaymentMethod;

    #[actix::test]
    async fn a_delivery_starts_when_goods_are_reserved_and_completes_once() {
        let t = temp_store();
        let d = DeliveryActor::new(&t.env()).unwrap().start();
        t.append(&order(1), vec![placed("kim", &[("A", 1, 100)], PaymentMethod::Card)]);
        let early = d.send(CompleteDelivery(order(1))).await.unwrap();
        assert!(matches!(early, Err(NodeError::Conflict(_))), "not started yet: {early:?}");
        t.append(&order(1), vec![EventKind::OrderReserved]);
        t.caught_up(NAME).await;
        assert!(t
            .events_of(&order(1))
            .contains(&EventKind::DeliveryStarted { delivery_id: "dlv-ord-1".into() }));
        let done = d.send(CompleteDelivery(order(1))).await.unwrap().unwrap();
        assert_eq!(done.state, DeliveryStatus::Delivered);
        assert!(matches!(d.send(CompleteDelivery(order(1))).await.unwrap(), Err(NodeError::Conflict(_))));
        let completed = t
            .events_of(&order(1))
            .iter()
            .filter(|e| matches!(e, EventKind::DeliveryCompleted { .. }))
            .count();
        assert_eq!(completed, 1);
    }

    #[actix::test]
    async fn an_unknown_order_has_no_delivery() {
        let t = temp_store();
        let d = DeliveryActor::new(&t.env()).unwrap().start();
        assert!(matches!(d.send(CompleteDelivery(order(9))).await.unwrap(), Err(NodeError::NotFound { .. })));
    }
}
