//! The orders each party holds at once (a driver's rides), for a workflow
//! with `max_active_per_party`: a party holds an order from its acceptance
//! until the order is delivered or ends, and may not accept another while
//! it holds the most it may.
//!
//! Kept as a table written in the same write as the status change, so the
//! count can never drift from the orders' statuses, not even on `kill -9`.

use crate::domain::{Order, OrderId, OrderStatus, Workflow};
use crate::error::{NodeError, Refused};
use crate::store::{abort, key_prefix, Table, Tx, TxResult};

/// `workflow \0 party` → the orders of that workflow the party holds.
const HOLDING: Table<Vec<OrderId>> = Table::new("party_orders");

fn key(workflow: &Workflow, party: &str) -> Vec<u8> {
    let mut key = key_prefix(&workflow.name);
    key.extend_from_slice(party.as_bytes());
    key
}

/// Refuses `party`'s acceptance of `order` when it holds the most orders
/// of the workflow it may.
pub fn check_room(tx: &Tx<'_>, order: &Order, party: &str, workflow: &Workflow) -> TxResult<(), NodeError> {
    let Some(most) = workflow.max_active_per_party else { return Ok(()) };
    let holding: Vec<OrderId> = tx.get(HOLDING, key(workflow, party))?.unwrap_or_default();
    if holding.len() < most as usize || holding.contains(&order.id) {
        return Ok(());
    }
    let list: Vec<&str> = holding.iter().map(OrderId::as_str).collect();
    abort(
        Refused::PartyBusy(format!(
            "{party} already holds {} (at most {most} at once in workflow {}): finish it first",
            list.join(", "),
            workflow.name
        ))
        .into(),
    )
}

/// Keeps the table in step with a change of `order` (`before`: its status
/// and acceptor before the change) in the write that made it.
pub fn track(
    tx: &mut Tx<'_>,
    before: (OrderStatus, Option<&str>),
    order: &Order,
    workflow: &Workflow,
) -> TxResult<(), NodeError> {
    if workflow.max_active_per_party.is_none() {
        return Ok(());
    }
    let Some(party) = order.accepted_by.as_deref() else { return Ok(()) };
    let key = key(workflow, party);
    let mut holding: Vec<OrderId> = tx.get(HOLDING, &key)?.unwrap_or_default();
    let holds = |status: OrderStatus| !status.is_terminal() && status != OrderStatus::Delivered;
    let (was, is) = (before.1.is_some() && holds(before.0), holds(order.status));
    match (was, is) {
        (false, true) if !holding.contains(&order.id) => holding.push(order.id.clone()),
        (true, false) => holding.retain(|o| *o != order.id),
        _ => return Ok(()),
    }
    match holding.is_empty() {
        true => tx.remove(HOLDING, &key),
        false => tx.put(HOLDING, &key, &holding),
    }
}
