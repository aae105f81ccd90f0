//! Timers as a table: when an order enters a status its workflow lets
//! expire, or starts a leg that may run only so long (a ride of at most 3
//! hours, a stay that ends with its dates), a timer is written in the same
//! write, keyed by its due time; when it leaves the status or the leg, the
//! timer goes. An order has at most one timer: the earliest. The order actor
//! reads the table in due order on each tick and acts on what is due in turn
//! with the order's other commands: it expires the order (a paid order does
//! not expire), or completes the leg (which frees the driver or the room).
//!
//! Durable like everything else: a timer that fell due while the node was
//! down fires once, on the first tick after start, and the write that
//! expires the order removes its timer.

use super::{LegOrder, OrderActor, OrderCommand};
use crate::actors::write_behind::WriteBehind;
use crate::domain::delivery::{LegAct, LegCommand};
use crate::domain::order::Command;
use crate::domain::{Order, OrderId, OrderStatus, Workflow};
use crate::error::{NodeError, Refused};
use crate::store::{key_prefix, StoreError, Table, Tx, TxResult};
use actix::{ActorFutureExt, AsyncContext, Context, WrapFuture};
use serde::{Deserialize, Serialize};

/// `due_ms(be) order` → the timer: due order first.
const TIMERS: Table<Timer> = Table::new("order_timers");
/// `order` → the key of its timer in [`TIMERS`], to remove it.
const BY_ORDER: Table<Vec<u8>> = Table::new("order_timers_by_order");

/// An order's time at a status, or on a leg.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    pub order_id: OrderId,
    /// The status it expires at (or, for a leg, that it is in).
    pub status: OrderStatus,
    pub due_ms: u64,
    // Grown since format 1: new fields go at the end (see store::codec).
    /// The leg it completes when due, by name; none: it expires the order.
    pub leg: Option<String>,
}

/// The timer `order` has now, if any: its status's expiry or its leg's
/// end, whichever is due first.
fn next_timer(order: &Order, workflow: &Workflow, now_ms: u64) -> Option<Timer> {
    let after = |d: std::time::Duration| now_ms.saturating_add(d.as_millis() as u64);
    let expiry = workflow.expiry(order.status).map(|d| Timer {
        order_id: order.id.clone(),
        status: order.status,
        due_ms: after(d),
        leg: None,
    });
    let leg = leg_end(order, workflow, now_ms).map(|(name, due_ms)| Timer {
        order_id: order.id.clone(),
        status: order.status,
        due_ms,
        leg: Some(name),
    });
    [expiry, leg].into_iter().flatten().min_by_key(|t| t.due_ms)
}

/// When the leg under way ends by itself, if it does: after its
/// `max_duration`, or (the last leg of a dated order) when the stay does.
fn leg_end(order: &Order, workflow: &Workflow, now_ms: u64) -> Option<(String, u64)> {
    if order.status != OrderStatus::InDelivery {
        return None;
    }
    let index = order.leg? as usize;
    let leg = workflow.legs.get(index)?;
    let limit = workflow.leg_limit(&leg.name).map(|d| now_ms.saturating_add(d.as_millis() as u64));
    let last = index + 1 == workflow.legs.len();
    let stay_end = order.stay.filter(|_| last).map(|s| s.end_ms());
    let due = [limit, stay_end].into_iter().flatten().min()?;
    Some((leg.name.clone(), due))
}

/// Whether an order at `status` may have a timer (so that a change away
/// from it needs to look for one): reads are spent only where one can be.
fn may_have_timer(status: OrderStatus, order: &Order, workflow: &Workflow) -> bool {
    workflow.expiry(status).is_some()
        || (status == OrderStatus::InDelivery && (!workflow.max_duration.is_empty() || order.stay.is_some()))
}

fn timer_key(due_ms: u64, order: &OrderId) -> Vec<u8> {
    let mut key = due_ms.to_be_bytes().to_vec();
    key.extend(key_prefix(order.as_str()));
    key
}

/// Keeps `order`'s timer in step with its status and leg, in the write
/// that changed them (`before`: the status and leg it had, `None` for a new
/// order). Nothing is read or written unless one of the two may have one.
pub fn schedule(
    tx: &mut Tx<'_>,
    before: Option<(OrderStatus, Option<u32>)>,
    order: &Order,
    workflow: &Workflow,
    now_ms: u64,
) -> TxResult<(), NodeError> {
    if before == Some((order.status, order.leg)) {
        return Ok(());
    }
    if before.is_some_and(|(status, _)| may_have_timer(status, order, workflow)) {
        if let Some(key) = tx.get(BY_ORDER, order.id.as_str())? {
            tx.remove(TIMERS, key)?;
            tx.remove(BY_ORDER, order.id.as_str())?;
        }
    }
    if let Some(timer) = next_timer(order, workflow, now_ms) {
        let key = timer_key(timer.due_ms, &order.id);
        tx.put(TIMERS, &key, &timer)?;
        tx.put(BY_ORDER, order.id.as_str(), &key)?;
    }
    Ok(())
}

/// The timers due at `now_ms`, oldest first, at most `limit`, held back
/// or committed.
fn due(records: &WriteBehind, now_ms: u64, limit: usize) -> Result<Vec<Timer>, StoreError> {
    let mut due = Vec::new();
    for entry in records.entries_from(TIMERS, [])? {
        let (_, timer) = entry?;
        if timer.due_ms > now_ms || due.len() == limit {
            break;
        }
        due.push(timer);
    }
    Ok(due)
}

/// Removes a timer that fired but found its order elsewhere already (and
/// the order's index entry, unless it names a newer timer).
pub fn forget(tx: &mut Tx<'_>, timer: &Timer) -> TxResult<(), NodeError> {
    let key = timer_key(timer.due_ms, &timer.order_id);
    tx.remove(TIMERS, &key)?;
    match tx.get(BY_ORDER, timer.order_id.as_str())? {
        Some(indexed) if indexed == key => tx.remove(BY_ORDER, timer.order_id.as_str()),
        _ => Ok(()),
    }
}

impl OrderActor {
    /// Expires the orders whose time at a status is up, each as a command
    /// decided in turn (see [`timers`]).
    pub(super) fn expire_due(&mut self, ctx: &mut Context<Self>) {
        let forget_before = self.clock.now_ms().saturating_sub(self.key_ttl_ms);
        if let Err(e) = super::idempotency::forget_expired(&self.cursor.store, forget_before, TIMERS_PER_TICK)
        {
            tracing::warn!(error = %e, "dropping expired idempotency keys failed; next tick");
        }
        let due = match due(&self.behind, self.clock.now_ms(), TIMERS_PER_TICK) {
            Ok(due) => due,
            Err(_) => return, // the store says why, in readiness and its log
        };
        for timer in due {
            if self.turns.is_held(&timer.order_id) {
                continue; // a leg command is being decided; next tick
            }
            if let Some(leg) = &timer.leg {
                self.end_leg(ctx, &timer, leg);
                continue;
            }
            let expire = OrderCommand {
                by: None,
                order_id: timer.order_id.clone(),
                command: Command::Expire { status: timer.status },
            };
            match self.decide_now(ctx, &expire) {
                Ok(_) => tracing::info!(order = %timer.order_id, status = %timer.status, "order expired"),
                // Waiting for an operator: it expires once it can be decided.
                Err(NodeError::Refused(Refused::NeedsAttention(_))) => {}
                // It moved on (or is gone) without its timer noticing.
                Err(NodeError::Refused(_)) => {
                    let _ = self.behind.write_now(|tx| forget(tx, &timer));
                }
                Err(_) => return, // not decided now: next tick
            }
        }
    }
}

impl OrderActor {
    /// Completes a leg whose time is up, as a leg command in turn with the
    /// order's others (the order is held until the delivery answers, so
    /// the next tick does not fire it again). The completion's fact moves
    /// the order on, and with it the timer; a leg that is over already
    /// (completed by hand meanwhile) is refused, and the timer forgotten.
    fn end_leg(&mut self, ctx: &mut Context<Self>, timer: &Timer, leg: &str) {
        let command = LegCommand { leg: Some(leg.to_owned()), act: LegAct::Complete, by: None };
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.start_leg(ctx, LegOrder { order_id: timer.order_id.clone(), command }, reply);
        let timer = timer.clone();
        // Back on the actor to forget the timer: its records are written
        // behind, and only the actor writes them.
        ctx.spawn(answer.into_actor(self).map(move |answer, act, _| match answer {
            Ok(Ok(_)) => {
                tracing::info!(order = %timer.order_id, leg = ?timer.leg, "leg ended: its time is up")
            }
            Ok(Err(NodeError::Refused(Refused::NeedsAttention(_)))) => {}
            Ok(Err(NodeError::Refused(_))) => {
                let _ = act.behind.write_now(|tx| forget(tx, &timer));
            }
            _ => {} // not decided now: next tick
        }));
    }
}

/// Timers expired in one tick at most; the rest wait for the next.
const TIMERS_PER_TICK: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{decode, encode};

    /// A timer written before timers could end legs (format 1: no `leg`)
    /// still reads, as the expiry it was.
    #[test]
    fn a_timer_written_by_format_1_reads_as_an_expiry() {
        let id = OrderId::from_number(4);
        let mut v1 = encode(&(id.clone(), OrderStatus::PaymentPending, 86_400_000u64)).unwrap();
        v1[0] = 1;
        let timer: Timer = decode(&v1).unwrap();
        assert_eq!(
            timer,
            Timer { order_id: id, status: OrderStatus::PaymentPending, due_ms: 86_400_000, leg: None }
        );
    }
}
