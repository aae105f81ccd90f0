//! The delivery service: delivers an order along its workflow's legs, in
//! order. A leg starts as soon as the one before it is done, or when
//! someone starts it explicitly (the overseas shipper); a checkpoint leg
//! (customs) can reject the goods.

use super::consumer::{catch_up, Cursor, Delivery as Mode, LogConsumer};
use super::supervision::guarded;
use super::{durably, NodeError, ServiceEnv};
use crate::domain::{Event, EventKind, LegSpec, OrderId};
use crate::store::{abort, read, Tx, TxResult};
use actix::prelude::*;
use serde::{Deserialize, Serialize};
use sled::Tree;

// ---- messages ----

/// Starts a leg that waits for an explicit start.
#[derive(Message)]
#[rtype(result = "Result<Delivery, NodeError>")]
pub struct StartLeg {
    pub order_id: OrderId,
    /// The leg's name or number.
    pub leg: String,
}

/// Completes a leg; `None`: whichever is under way.
#[derive(Message)]
#[rtype(result = "Result<Delivery, NodeError>")]
pub struct CompleteLeg {
    pub order_id: OrderId,
    pub leg: Option<String>,
}

/// A checkpoint leg rejects the goods.
#[derive(Message)]
#[rtype(result = "Result<Delivery, NodeError>")]
pub struct RejectLeg {
    pub order_id: OrderId,
    pub leg: String,
    pub reason: String,
}

#[derive(Message)]
#[rtype(result = "Result<Delivery, NodeError>")]
pub struct GetDelivery(pub OrderId);

// ---- state ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub order_id: OrderId,
    pub state: DeliveryStatus,
    pub legs: Vec<LegSpec>,
    /// The leg under way or next to start.
    pub current: u32,
    pub leg_state: LegState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// The order exists; it is not ready to be delivered yet.
    Awaiting,
    InProgress,
    Delivered,
    /// The order ended (canceled, rejected) or a checkpoint rejected it.
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegState {
    /// Waits for an explicit start.
    Waiting,
    InTransit,
    Done,
}

pub struct DeliveryActor {
    cursor: Cursor,
    deliveries: Tree,
}

const DELIVERIES: usize = 0;
pub const NAME: &str = crate::service::Service::Delivery.name();

/// What a command does to the current leg.
enum Act<'a> {
    Start,
    Complete,
    Reject(&'a str),
}

impl DeliveryActor {
    pub fn new(env: &ServiceEnv) -> Result<Self, NodeError> {
        Ok(DeliveryActor { deliveries: env.store.tree("deliveries")?, cursor: Cursor::load(env, NAME)? })
    }

    /// Acts on a leg (`None`: the current one) of an order's delivery.
    fn act(&mut self, order_id: &OrderId, leg: Option<&str>, act: Act<'_>) -> Result<Delivery, NodeError> {
        catch_up(self)?;
        let (delivery, _) = self.cursor.store.write(&[&self.deliveries], |tx| {
            let Some(mut d) = tx.get::<Delivery, _>(DELIVERIES, order_id.as_str())? else {
                return abort(NodeError::not_found("order", order_id));
            };
            if let Err(e) = d.check(leg, &act) {
                return abort(e);
            }
            match act {
                Act::Start => d.start(tx)?,
                Act::Complete => d.complete(tx)?,
                Act::Reject(reason) => d.reject(tx, reason)?,
            }
            tx.put(DELIVERIES, order_id.as_str(), &d)?;
            Ok(d)
        })?;
        Ok(delivery)
    }
}

impl Delivery {
    fn leg_name(&self) -> &str {
        self.legs.get(self.current as usize).map(|l| l.name.as_str()).unwrap_or("")
    }

    /// Refuses an act that does not fit the current leg.
    fn check(&self, leg: Option<&str>, act: &Act<'_>) -> Result<(), NodeError> {
        let conflict =
            |why: String| Err(NodeError::Conflict(format!("the delivery of order {}: {why}", self.order_id)));
        match self.state {
            DeliveryStatus::InProgress => {}
            DeliveryStatus::Awaiting => return conflict("it has not started".into()),
            DeliveryStatus::Delivered => return conflict("it is delivered".into()),
            DeliveryStatus::Stopped => return conflict("it is stopped".into()),
        }
        if let Some(name) = leg {
            let index = self.legs.iter().position(|l| l.name == name).or_else(|| name.parse().ok());
            let index =
                index.filter(|i| *i < self.legs.len()).ok_or_else(|| NodeError::not_found("leg", name))?;
            if index != self.current as usize {
                return conflict(format!("leg {name} is not the current leg ({})", self.leg_name()));
            }
        }
        let current = self.leg_name().to_owned();
        match (act, self.leg_state) {
            (Act::Start, LegState::Waiting) => Ok(()),
            (Act::Start, _) => conflict(format!("leg {current} has started")),
            (_, LegState::Waiting) => conflict(format!("leg {current} has not started")),
            (Act::Reject(_), _) if !self.legs[self.current as usize].checkpoint => {
                conflict(format!("leg {current} is not a checkpoint"))
            }
            _ => Ok(()),
        }
    }

    fn fact(&self, tx: &mut Tx<'_>, kind: EventKind) -> TxResult<(), NodeError> {
        tx.append(&self.order_id, None, kind)?;
        Ok(())
    }

    fn leg_fact(&self) -> (String, u32, String) {
        (self.id.clone(), self.current, self.leg_name().to_owned())
    }

    fn start(&mut self, tx: &mut Tx<'_>) -> TxResult<(), NodeError> {
        self.leg_state = LegState::InTransit;
        let (delivery_id, leg, name) = self.leg_fact();
        self.fact(tx, EventKind::LegStarted { delivery_id, leg, name })
    }

    /// Starts the current leg, unless it waits for an explicit start.
    fn start_or_wait(&mut self, tx: &mut Tx<'_>) -> TxResult<(), NodeError> {
        match self.legs[self.current as usize].explicit_start {
            true => {
                self.leg_state = LegState::Waiting;
                Ok(())
            }
            false => self.start(tx),
        }
    }

    fn complete(&mut self, tx: &mut Tx<'_>) -> TxResult<(), NodeError> {
        let (delivery_id, leg, name) = self.leg_fact();
        self.fact(tx, EventKind::LegCompleted { delivery_id: delivery_id.clone(), leg, name })?;
        if self.current as usize + 1 == self.legs.len() {
            (self.state, self.leg_state) = (DeliveryStatus::Delivered, LegState::Done);
            return self.fact(tx, EventKind::DeliveryCompleted { delivery_id });
        }
        self.current += 1;
        self.start_or_wait(tx)
    }

    fn reject(&mut self, tx: &mut Tx<'_>, reason: &str) -> TxResult<(), NodeError> {
        self.state = DeliveryStatus::Stopped;
        let (delivery_id, leg, name) = self.leg_fact();
        self.fact(tx, EventKind::LegRejected { delivery_id, leg, name, reason: reason.to_owned() })
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
                legs: vec![],
                current: 0,
                leg_state: LegState::Waiting,
            };
            tx.put(DELIVERIES, key, &d)
        }
        (EventKind::DeliveryRequested { legs }, Some(mut d))
            if d.state == DeliveryStatus::Awaiting && !legs.is_empty() =>
        {
            (d.state, d.legs, d.current) = (DeliveryStatus::InProgress, legs.clone(), 0);
            d.start_or_wait(tx)?;
            tx.put(DELIVERIES, key, &d)
        }
        (kind, Some(mut d)) if kind.ends_order().is_some() && d.state != DeliveryStatus::Delivered => {
            d.state = DeliveryStatus::Stopped;
            tx.put(DELIVERIES, key, &d)
        }
        _ => Ok(()),
    }
}

impl Handler<StartLeg> for DeliveryActor {
    type Result = ResponseFuture<Result<Delivery, NodeError>>;

    fn handle(&mut self, msg: StartLeg, ctx: &mut Context<Self>) -> Self::Result {
        let result =
            guarded(self, ctx, Some(&msg.order_id), |act| act.act(&msg.order_id, Some(&msg.leg), Act::Start));
        durably(&self.cursor.store, result)
    }
}

impl Handler<CompleteLeg> for DeliveryActor {
    type Result = ResponseFuture<Result<Delivery, NodeError>>;

    fn handle(&mut self, msg: CompleteLeg, ctx: &mut Context<Self>) -> Self::Result {
        let leg = msg.leg.as_deref();
        let result =
            guarded(self, ctx, Some(&msg.order_id), |act| act.act(&msg.order_id, leg, Act::Complete));
        durably(&self.cursor.store, result)
    }
}

impl Handler<RejectLeg> for DeliveryActor {
    type Result = ResponseFuture<Result<Delivery, NodeError>>;

    fn handle(&mut self, msg: RejectLeg, ctx: &mut Context<Self>) -> Self::Result {
        let result = guarded(self, ctx, Some(&msg.order_id), |act| {
            act.act(&msg.order_id, Some(&msg.leg), Act::Reject(&msg.reason))
        });
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

    fn leg(name: &str, checkpoint: bool, explicit_start: bool) -> LegSpec {
        LegSpec { name: name.into(), checkpoint, explicit_start }
    }

    fn complete(n: u64) -> CompleteLeg {
        CompleteLeg { order_id: order(n), leg: None }
    }

    fn names(events: &[EventKind]) -> Vec<&'static str> {
        events.iter().map(EventKind::name).collect()
    }

    #[actix::test]
    async fn legs_run_in_order_and_the_last_completes_the_delivery() {
        let t = temp_store();
        let d = DeliveryActor::new(&t.env()).unwrap().start();
        t.append(&order(1), vec![placed("kim", &[("A", 1, 100)], PaymentMethod::Card)]);
        let early = d.send(complete(1)).await.unwrap();
        assert!(matches!(early, Err(NodeError::Conflict(_))), "not started yet: {early:?}");
        let legs =
            vec![leg("overseas", false, true), leg("customs", true, false), leg("domestic", false, false)];
        t.append(&order(1), vec![EventKind::DeliveryRequested { legs }]);
        t.caught_up(NAME).await;
        assert!(
            matches!(d.send(complete(1)).await.unwrap(), Err(NodeError::Conflict(_))),
            "overseas waits for a start"
        );
        let wrong = StartLeg { order_id: order(1), leg: "customs".into() };
        assert!(
            matches!(d.send(wrong).await.unwrap(), Err(NodeError::Conflict(why)) if why.contains("not the current"))
        );
        d.send(StartLeg { order_id: order(1), leg: "overseas".into() }).await.unwrap().unwrap();
        let not_checkpoint = RejectLeg { order_id: order(1), leg: "overseas".into(), reason: "x".into() };
        assert!(
            matches!(d.send(not_checkpoint).await.unwrap(), Err(NodeError::Conflict(why)) if why.contains("checkpoint"))
        );
        for _ in 0..3 {
            d.send(complete(1)).await.unwrap().unwrap();
        }
        let done = d.send(GetDelivery(order(1))).await.unwrap().unwrap();
        assert_eq!(done.state, DeliveryStatus::Delivered);
        let expected = [
            "order_placed",
            "delivery_requested",
            "leg_started",
            "leg_completed",
            "leg_started",
            "leg_completed",
            "leg_started",
            "leg_completed",
            "delivery_completed",
        ];
        assert_eq!(names(&t.events_of(&order(1))), expected);
        assert!(matches!(d.send(complete(1)).await.unwrap(), Err(NodeError::Conflict(_))));
    }

    #[actix::test]
    async fn a_checkpoint_can_reject_and_the_delivery_stops() {
        let t = temp_store();
        let d = DeliveryActor::new(&t.env()).unwrap().start();
        let legs = vec![leg("customs", true, false), leg("domestic", false, false)];
        t.append(
            &order(1),
            vec![placed("kim", &[], PaymentMethod::Card), EventKind::DeliveryRequested { legs }],
        );
        let reject =
            RejectLeg { order_id: order(1), leg: "customs".into(), reason: "forbidden goods".into() };
        assert_eq!(d.send(reject).await.unwrap().unwrap().state, DeliveryStatus::Stopped);
        assert!(
            matches!(t.events_of(&order(1)).last(), Some(EventKind::LegRejected { reason, .. }) if reason == "forbidden goods")
        );
    }

    #[actix::test]
    async fn an_unknown_order_has_no_delivery() {
        let t = temp_store();
        let d = DeliveryActor::new(&t.env()).unwrap().start();
        assert!(matches!(d.send(complete(9)).await.unwrap(), Err(NodeError::NotFound { .. })));
    }
}
