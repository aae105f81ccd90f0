//! One decision at a time per order: the order actor is the one door for
//! every command that changes an order's course, its delivery legs
//! included.
//!
//! A command on an order's own state (cancel, accept, confirm) is decided
//! here at once, so two of them never race. A leg command (start, complete,
//! reject a leg) is decided by the delivery service; the order actor checks
//! the order's state first, forwards it, and holds the order until the
//! delivery has answered: any command on the same order that arrives
//! meanwhile waits its turn, and is then decided on the state the leg
//! command left (a cancel after a ride started is told the ride started).
//! Other orders are not held up.

use super::{OrderActor, OrderCommand};
use crate::actors::ask;
use crate::actors::consumer::{catch_up, schedule_pending};
use crate::actors::delivery::{ActOnLeg, Delivery};
use crate::actors::supervision::guarded;
use crate::domain::delivery::LegCommand;
use crate::domain::{Order, OrderId};
use crate::error::{CallError, NodeError};
use actix::prelude::*;
use std::collections::{HashMap, VecDeque};
use tokio::sync::oneshot;

/// A command on an order's delivery leg, decided in turn with the order's
/// other commands.
#[derive(Message)]
#[rtype(result = "Result<Delivery, NodeError>")]
pub struct LegOrder {
    pub order_id: OrderId,
    pub command: LegCommand,
}

/// A command waiting for its order's turn, with who waits for the answer.
enum Waiting {
    Command(OrderCommand, oneshot::Sender<Result<Order, NodeError>>),
    Leg(LegOrder, oneshot::Sender<Result<Delivery, NodeError>>),
}

/// The orders held by a leg command in flight (an order is held exactly
/// while it has an entry), and what waits behind each.
#[derive(Default)]
pub(super) struct Turns {
    held: HashMap<OrderId, VecDeque<Waiting>>,
}

impl Turns {
    pub(super) fn is_held(&self, order: &OrderId) -> bool {
        self.held.contains_key(order)
    }

    fn wait(&mut self, order: &OrderId, waiting: Waiting) {
        self.held.entry(order.clone()).or_default().push_back(waiting);
    }

    /// Drops every held order; the waiting callers are told the service
    /// restarted (nothing of their commands was decided).
    pub(super) fn clear(&mut self) {
        let restarted = || NodeError::Call(CallError::Unavailable(super::NAME));
        for (_, queue) in self.held.drain() {
            for waiting in queue {
                match waiting {
                    Waiting::Command(_, reply) => drop(reply.send(Err(restarted()))),
                    Waiting::Leg(_, reply) => drop(reply.send(Err(restarted()))),
                }
            }
        }
    }
}

/// Waits for the answer of a command that waits for its turn.
fn answer_later<T: Send + 'static>(
    rx: oneshot::Receiver<Result<T, NodeError>>,
) -> ResponseFuture<Result<T, NodeError>> {
    Box::pin(async move { rx.await.unwrap_or(Err(NodeError::Call(CallError::Unavailable(super::NAME)))) })
}

impl OrderActor {
    /// Decides a command on the order itself now, on every recorded fact.
    pub(super) fn decide_now(
        &mut self,
        ctx: &mut Context<Self>,
        msg: &OrderCommand,
    ) -> Result<Order, NodeError> {
        let decided = guarded(self, ctx, Some(&msg.order_id), |act| {
            catch_up(act)?;
            act.cursor.not_quarantined(&msg.order_id)?;
            act.execute(&msg.order_id, &msg.command, msg.by.as_deref())
        });
        schedule_pending(self, ctx);
        decided
    }

    /// Checks the order lets its delivery go on, then has the delivery
    /// service decide the leg command while the order is held.
    pub(super) fn start_leg(
        &mut self,
        ctx: &mut Context<Self>,
        msg: LegOrder,
        reply: oneshot::Sender<Result<Delivery, NodeError>>,
    ) {
        let checked = guarded(self, ctx, Some(&msg.order_id), |act| {
            catch_up(act)?;
            act.cursor.not_quarantined(&msg.order_id)?;
            Ok(act.order(&msg.order_id)?.allows_delivery_step()?)
        });
        schedule_pending(self, ctx);
        if let Err(e) = checked {
            let _ = reply.send(Err(e));
            return;
        }
        self.turns.held.entry(msg.order_id.clone()).or_default();
        let order = msg.order_id.clone();
        let act_on_leg = ActOnLeg { order_id: msg.order_id, command: msg.command };
        let (delivery, timeout) = (self.delivery.clone(), self.timeouts.request());
        let asked = async move { ask(&delivery, act_on_leg, timeout, crate::actors::delivery::NAME).await };
        ctx.spawn(asked.into_actor(self).map(move |answer, act, ctx| {
            let _ = reply.send(answer);
            act.next_turn(ctx, &order);
        }));
    }

    /// Decides what waited behind `order`'s leg command, in order, until
    /// another leg command holds the order again or nothing is left.
    fn next_turn(&mut self, ctx: &mut Context<Self>, order: &OrderId) {
        let mut queue = self.turns.held.remove(order).unwrap_or_default();
        while let Some(waiting) = queue.pop_front() {
            match waiting {
                Waiting::Command(msg, reply) => {
                    let decided = self.decide_now(ctx, &msg);
                    let store = self.cursor.store.clone();
                    actix::spawn(async move {
                        let durable = match decided {
                            Ok(order) => store.durable().await.map(|_| order).map_err(NodeError::from),
                            Err(e) => Err(e),
                        };
                        let _ = reply.send(durable);
                    });
                }
                Waiting::Leg(msg, reply) => {
                    self.start_leg(ctx, msg, reply);
                    if let Some(held) = self.turns.held.get_mut(order) {
                        // In flight again: the rest waits behind it.
                        held.extend(queue);
                        return;
                    }
                }
            }
        }
    }
}

impl Handler<OrderCommand> for OrderActor {
    type Result = ResponseFuture<Result<Order, NodeError>>;

    fn handle(&mut self, msg: OrderCommand, ctx: &mut Context<Self>) -> Self::Result {
        if self.turns.is_held(&msg.order_id) {
            let (tx, rx) = oneshot::channel();
            let order = msg.order_id.clone();
            self.turns.wait(&order, Waiting::Command(msg, tx));
            return answer_later(rx);
        }
        let result = self.decide_now(ctx, &msg);
        crate::actors::durably(&self.cursor.store, result)
    }
}

impl Handler<LegOrder> for OrderActor {
    type Result = ResponseFuture<Result<Delivery, NodeError>>;

    fn handle(&mut self, msg: LegOrder, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if self.turns.is_held(&msg.order_id) {
            let order = msg.order_id.clone();
            self.turns.wait(&order, Waiting::Leg(msg, tx));
        } else {
            self.start_leg(ctx, msg, tx);
        }
        answer_later(rx)
    }
}
