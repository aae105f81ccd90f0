//! Timers as a table: when an order enters a status its workflow lets
//! expire, a timer is written in the same write, keyed by its due time; when
//! it leaves the status, the timer goes. The order actor reads the table in
//! due order on each tick and expires what is due, as a command decided in
//! turn with the order's others (a paid order does not expire).
//!
//! Durable like everything else: a timer that fell due while the node was
//! down fires once, on the first tick after start, and the write that
//! expires the order removes its timer.

use super::{OrderActor, OrderCommand};
use crate::domain::order::Command;
use crate::domain::{Order, OrderId, OrderStatus, Workflow};
use crate::error::{NodeError, Refused};
use crate::store::{key_prefix, Store, StoreError, Table, Tx, TxResult};
use actix::Context;
use serde::{Deserialize, Serialize};

/// `due_ms(be) order` → the timer: due order first.
const TIMERS: Table<Timer> = Table::new("order_timers");
/// `order` → the key of its timer in [`TIMERS`], to remove it.
const BY_ORDER: Table<Vec<u8>> = Table::new("order_timers_by_order");

/// An order's time at a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    pub order_id: OrderId,
    /// The status it expires at.
    pub status: OrderStatus,
    pub due_ms: u64,
}

fn timer_key(due_ms: u64, order: &OrderId) -> Vec<u8> {
    let mut key = due_ms.to_be_bytes().to_vec();
    key.extend(key_prefix(order.as_str()));
    key
}

/// Keeps `order`'s timer in step with its status, in the write that changed
/// it (`before`: the status it had, `None` for a new order). Nothing is
/// read or written unless the workflow lets one of the two statuses expire.
pub fn schedule(
    tx: &mut Tx<'_>,
    before: Option<OrderStatus>,
    order: &Order,
    workflow: &Workflow,
    now_ms: u64,
) -> TxResult<(), NodeError> {
    if before == Some(order.status) {
        return Ok(());
    }
    if before.and_then(|s| workflow.expiry(s)).is_some() {
        if let Some(key) = tx.get(BY_ORDER, order.id.as_str())? {
            tx.remove(TIMERS, key)?;
            tx.remove(BY_ORDER, order.id.as_str())?;
        }
    }
    if let Some(after) = workflow.expiry(order.status) {
        let due_ms = now_ms.saturating_add(after.as_millis() as u64);
        let key = timer_key(due_ms, &order.id);
        tx.put(TIMERS, &key, &Timer { order_id: order.id.clone(), status: order.status, due_ms })?;
        tx.put(BY_ORDER, order.id.as_str(), &key)?;
    }
    Ok(())
}

/// The timers due at `now_ms`, oldest first, at most `limit`.
pub fn due(store: &Store, now_ms: u64, limit: usize) -> Result<Vec<Timer>, StoreError> {
    let mut due = Vec::new();
    for entry in store.entries_from(TIMERS, [])? {
        let (_, timer) = entry?;
        if timer.due_ms > now_ms || due.len() == limit {
            break;
        }
        due.push(timer);
    }
    Ok(due)
}

/// Removes a timer that fired but found its order elsewhere already.
pub fn forget(tx: &mut Tx<'_>, timer: &Timer) -> TxResult<(), NodeError> {
    tx.remove(TIMERS, timer_key(timer.due_ms, &timer.order_id))?;
    tx.remove(BY_ORDER, timer.order_id.as_str())
}

impl OrderActor {
    /// Expires the orders whose time at a status is up, each as a command
    /// decided in turn (see [`timers`]).
    pub(super) fn expire_due(&mut self, ctx: &mut Context<Self>) {
        let due = match due(&self.cursor.store, self.clock.now_ms(), TIMERS_PER_TICK) {
            Ok(due) => due,
            Err(_) => return, // the store says why, in readiness and its log
        };
        for timer in due {
            if self.turns.is_held(&timer.order_id) {
                continue; // a leg command is being decided; next tick
            }
            let expire = OrderCommand {
                order_id: timer.order_id.clone(),
                command: Command::Expire { status: timer.status },
            };
            match self.decide_now(ctx, &expire) {
                Ok(_) => tracing::info!(order = %timer.order_id, status = %timer.status, "order expired"),
                // Waiting for an operator: it expires once it can be decided.
                Err(NodeError::Refused(Refused::NeedsAttention(_))) => {}
                // It moved on (or is gone) without its timer noticing.
                Err(NodeError::Refused(_)) => {
                    let _ = self.cursor.store.write(|tx| forget(tx, &timer));
                }
                Err(_) => return, // not decided now: next tick
            }
        }
    }
}

/// Timers expired in one tick at most; the rest wait for the next.
const TIMERS_PER_TICK: usize = 256;
