//! The delivery service: delivers an order along its workflow's legs, in
//! order. The rules are the pure fold in [`crate::domain::delivery`]; this
//! actor loads an order's delivery, runs the fold and stores what it
//! returns. Deliveries are written behind ([`super::write_behind`]): a
//! fact's change is folded in memory and committed with others, its
//! reactions appended at once and, after a crash, not twice
//! ([`super::recorded`]); a leg command is written at once.

use super::consumer::{catch_up, Cursor, Delivery as Mode, LogConsumer};
use super::recorded::Recorded;
use super::supervision::guarded;
use super::write_behind::WriteBehind;
use super::{durably, ServiceEnv};
use crate::domain::delivery::{LegAct, LegCommand};
use crate::domain::{Event, EventKind, OrderId};
use crate::error::NodeError;
use crate::store::{abort, Reader, Table, Tx, TxResult, UNFOLDED_AT_MOST};
use actix::prelude::*;

// ---- messages ----

/// A party's command on an order's delivery leg. The order service sends
/// it, once the order's own state allows it (see `order::course`), so that
/// it is decided in turn with the order's other commands.
#[derive(Message)]
#[rtype(result = "Result<Delivery, NodeError>")]
pub struct ActOnLeg {
    pub order_id: OrderId,
    pub command: LegCommand,
}

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

pub use crate::domain::delivery::{Delivery, DeliveryStatus, LegState};

pub struct DeliveryActor {
    cursor: Cursor,
    /// The deliveries, written behind.
    behind: WriteBehind,
}

const DELIVERIES: Table<Delivery> = Table::new("deliveries");
pub const NAME: &str = crate::service::Service::Delivery.name();

impl DeliveryActor {
    pub fn new(env: &ServiceEnv) -> Result<Self, NodeError> {
        Ok(DeliveryActor {
            cursor: Cursor::load(env, NAME)?,
            behind: WriteBehind::new(env, NAME).reacting(is_delivery_event),
        })
    }

    /// Holds deliveries back for `every` instead (tests that look before
    /// the commit).
    pub fn committing_every(self, every: std::time::Duration) -> Self {
        DeliveryActor { behind: self.behind.every(every), ..self }
    }

    /// Decides a party's command on an order's delivery, on every fact
    /// recorded before it, and records what follows.
    fn act(&mut self, order_id: &OrderId, command: LegCommand) -> Result<Delivery, NodeError> {
        catch_up(self)?;
        self.cursor.not_quarantined(order_id)?;
        let (delivery, _) = self.behind.write_now(|tx| {
            let Some(mut d) = tx.get::<Delivery, _>(DELIVERIES, order_id.as_str())? else {
                return abort(NodeError::not_found("order", order_id));
            };
            let decided = match d.decide(&command) {
                Ok(events) => events,
                Err(refusal) => return abort(refusal.into()),
            };
            for kind in d.advance(decided) {
                tx.append(order_id, None, kind)?;
            }
            tx.put(DELIVERIES, order_id.as_str(), &d)?;
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
        self.behind.apply(&self.cursor, batch, mode, on_event)
    }

    fn behind(&mut self) -> Option<&mut WriteBehind> {
        Some(&mut self.behind)
    }
}

/// The kinds of event only this service writes.
fn is_delivery_event(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::LegStarted { .. }
            | EventKind::LegCompleted { .. }
            | EventKind::LegRejected { .. }
            | EventKind::DeliveryCompleted { .. }
    )
}

/// Folds another service's fact into the order's delivery; what it decides
/// is appended, naming the fact, unless the log holds it already.
fn on_event(tx: &mut Tx<'_>, event: &Event, recorded: &Recorded) -> TxResult<(), NodeError> {
    let key = event.order_id.as_str();
    let delivery: Option<Delivery> = tx.get(DELIVERIES, key)?;
    let Some((d, events)) = Delivery::on_fact(delivery, &event.order_id, &event.kind) else {
        return Ok(());
    };
    if !recorded.holds(event.seq) {
        for kind in events {
            tx.append(&event.order_id, Some(event.seq), kind)?;
        }
    }
    tx.put(DELIVERIES, key, &d)
}

/// An order's delivery as the service would answer for it, read from a
/// store it does not run on (a failover follower's copy of the
/// leader's): the stored record with the facts after the service's
/// offset folded on by its own rule ([`Delivery::on_fact`]). Exact for
/// the same reason as the order's (`actors::order::from_store`): a
/// command's write goes with what is held back whenever it touches it, so
/// a stored delivery holds exactly the facts up to the offset, and the
/// service's own events are never folded from the log. `None` when this
/// store cannot tell (more than [`UNFOLDED_AT_MOST`] events after the
/// offset, or one of the order's set aside, which its later ones wait
/// behind).
pub fn delivery_in(store: &Reader<'_>, id: &OrderId) -> Result<Option<Delivery>, NodeError> {
    if store.set_aside(id, NAME)? {
        return Ok(None);
    }
    let Some(unfolded) = store.unfolded(NAME, UNFOLDED_AT_MOST)? else { return Ok(None) };
    let mut delivery: Option<Delivery> = store.get(DELIVERIES, id.as_str())?;
    for event in unfolded.iter().filter(|e| e.order_id == *id) {
        if let Some((folded, _)) = Delivery::on_fact(delivery.clone(), id, &event.kind) {
            delivery = Some(folded);
        }
    }
    delivery.map(Some).ok_or_else(|| NodeError::not_found("delivery for order", id))
}

impl Handler<ActOnLeg> for DeliveryActor {
    type Result = ResponseFuture<Result<Delivery, NodeError>>;

    fn handle(&mut self, msg: ActOnLeg, ctx: &mut Context<Self>) -> Self::Result {
        let result = guarded(self, ctx, Some(&msg.order_id), |act| act.act(&msg.order_id, msg.command));
        super::consumer::schedule_pending(self, ctx);
        durably(&self.cursor.store, result)
    }
}

fn command(leg: Option<String>, act: LegAct) -> LegCommand {
    LegCommand { leg, act, by: None }
}

impl Handler<StartLeg> for DeliveryActor {
    type Result = ResponseFuture<Result<Delivery, NodeError>>;

    fn handle(&mut self, msg: StartLeg, ctx: &mut Context<Self>) -> Self::Result {
        let result = guarded(self, ctx, Some(&msg.order_id), |act| {
            act.act(&msg.order_id, command(Some(msg.leg), LegAct::Start))
        });
        super::consumer::schedule_pending(self, ctx);
        durably(&self.cursor.store, result)
    }
}

impl Handler<CompleteLeg> for DeliveryActor {
    type Result = ResponseFuture<Result<Delivery, NodeError>>;

    fn handle(&mut self, msg: CompleteLeg, ctx: &mut Context<Self>) -> Self::Result {
        let result = guarded(self, ctx, Some(&msg.order_id), |act| {
            act.act(&msg.order_id, command(msg.leg, LegAct::Complete))
        });
        super::consumer::schedule_pending(self, ctx);
        durably(&self.cursor.store, result)
    }
}

impl Handler<RejectLeg> for DeliveryActor {
    type Result = ResponseFuture<Result<Delivery, NodeError>>;

    fn handle(&mut self, msg: RejectLeg, ctx: &mut Context<Self>) -> Self::Result {
        let result = guarded(self, ctx, Some(&msg.order_id), |act| {
            act.act(&msg.order_id, command(Some(msg.leg), LegAct::Reject(msg.reason)))
        });
        super::consumer::schedule_pending(self, ctx);
        durably(&self.cursor.store, result)
    }
}

impl Handler<GetDelivery> for DeliveryActor {
    type Result = Result<Delivery, NodeError>;

    fn handle(&mut self, msg: GetDelivery, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, Some(&msg.0), |act| {
            act.behind
                .get(DELIVERIES, msg.0.as_str())?
                .ok_or_else(|| NodeError::not_found("delivery for order", &msg.0))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::testing::{order, placed, temp_store};
    use crate::domain::{EventKind, LegSpec, PaymentMethod};
    use crate::error::Refused;

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
        assert!(matches!(early, Err(NodeError::Refused(Refused::Conflict(_)))), "not started yet: {early:?}");
        let legs =
            vec![leg("overseas", false, true), leg("customs", true, false), leg("domestic", false, false)];
        t.append(&order(1), vec![EventKind::DeliveryRequested { legs }]);
        t.caught_up(NAME).await;
        assert!(
            matches!(d.send(complete(1)).await.unwrap(), Err(NodeError::Refused(Refused::Conflict(_)))),
            "overseas waits for a start"
        );
        let wrong = StartLeg { order_id: order(1), leg: "customs".into() };
        assert!(
            matches!(d.send(wrong).await.unwrap(), Err(NodeError::Refused(Refused::Conflict(why))) if why.contains("not the current"))
        );
        d.send(StartLeg { order_id: order(1), leg: "overseas".into() }).await.unwrap().unwrap();
        let not_checkpoint = RejectLeg { order_id: order(1), leg: "overseas".into(), reason: "x".into() };
        assert!(
            matches!(d.send(not_checkpoint).await.unwrap(), Err(NodeError::Refused(Refused::Conflict(why))) if why.contains("checkpoint"))
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
        assert!(matches!(d.send(complete(1)).await.unwrap(), Err(NodeError::Refused(Refused::Conflict(_)))));
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

    /// What a failover follower answers from its copy of the store
    /// ([`delivery_in`]) is what the service answers: while the facts are
    /// held back, after a command wrote them with the offset, and after a
    /// commit; an unknown order has none.
    #[actix::test]
    async fn a_delivery_read_from_the_store_alone_is_the_services() {
        let t = temp_store();
        let an_hour = std::time::Duration::from_secs(3600);
        let d = DeliveryActor::new(&t.env()).unwrap().committing_every(an_hour).start();
        let read = |n: u64| delivery_in(&t.store.reader(), &order(n)).unwrap().expect("readable");
        let services = |n: u64| d.send(GetDelivery(order(n)));
        let legs = vec![leg("overseas", false, true), leg("customs", true, false)];
        // Given two orders whose delivery was asked for, held back.
        for n in [1, 2] {
            let requested = EventKind::DeliveryRequested { legs: legs.clone() };
            t.append(&order(n), vec![placed("kim", &[("A", 1, 100)], PaymentMethod::Card), requested]);
        }
        t.caught_up(NAME).await;
        assert_eq!(t.store.offset(NAME).unwrap(), 0, "held back");
        assert_eq!(read(1), services(1).await.unwrap().unwrap(), "folded from the log");
        // When a command on the first writes it with what is held back.
        let started = d.send(StartLeg { order_id: order(1), leg: "overseas".into() }).await.unwrap().unwrap();
        assert_eq!(read(1), started);
        assert_eq!(read(2), services(2).await.unwrap().unwrap());
        // Then an order ends (the second is canceled), and all is committed.
        t.append(
            &order(2),
            vec![EventKind::OrderCanceled { reason: crate::domain::CancelReason::CustomerRequest }],
        );
        t.caught_up(NAME).await;
        assert_eq!(read(2), services(2).await.unwrap().unwrap(), "the cancel folded from the log");
        d.send(crate::actors::consumer::CommitHeldBack).await.unwrap().unwrap();
        for n in [1, 2] {
            assert_eq!(read(n), services(n).await.unwrap().unwrap(), "committed");
        }
        let unknown = delivery_in(&t.store.reader(), &order(9));
        assert!(matches!(unknown, Err(NodeError::Refused(Refused::NotFound { .. }))), "{unknown:?}");
    }

    #[actix::test]
    async fn an_unknown_order_has_no_delivery() {
        let t = temp_store();
        let d = DeliveryActor::new(&t.env()).unwrap().start();
        assert!(matches!(
            d.send(complete(9)).await.unwrap(),
            Err(NodeError::Refused(Refused::NotFound { .. }))
        ));
    }
}
