//! The order's command side (`GET /orders/{id}`) answered from a store the
//! order service does not run on: a failover follower's copy of the
//! leader's (`http::forward::reads`).
//!
//! # Why folding on top of the stored record is exact
//!
//! The service writes a placement or a command's change at once, and the
//! other services' facts behind, with its offset. A command's write goes
//! beside what is held back only when it touches none of it; otherwise
//! it goes with all of it and the offset (`WriteBehind::write_now`). So a
//! stored order holds its own events (placement, commands, the reactions
//! they decided) and exactly the facts up to the service's committed
//! offset, no more: the same record a restarted service folds the facts
//! after that offset onto, by the same rule ([`fold_fact`]). The order's
//! own events after the offset are skipped here as there: the record
//! holds them, or the fold of the fact that caused them does. The leader's
//! service catches up with the log before it answers, so its answer is
//! this one.

use super::{fold_fact, NAME, ORDERS};
use crate::domain::{Order, OrderId, Workflows};
use crate::error::NodeError;
use crate::store::{Reader, UNFOLDED_AT_MOST};

/// The order as the order service would answer for it; `None` when this
/// store cannot tell (more than [`UNFOLDED_AT_MOST`] events after the
/// service's offset, or one of the order's events set aside, which its
/// later ones wait behind).
pub fn order_in(store: &Reader<'_>, workflows: &Workflows, id: &OrderId) -> Result<Option<Order>, NodeError> {
    if store.set_aside(id, NAME)? {
        return Ok(None);
    }
    let Some(unfolded) = store.unfolded(NAME, UNFOLDED_AT_MOST)? else { return Ok(None) };
    let mut order: Order =
        store.get(ORDERS, id.as_str())?.ok_or_else(|| NodeError::not_found("order", id))?;
    let workflow = workflows.get(&order.workflow)?;
    for event in unfolded.iter().filter(|e| e.order_id == *id && !e.kind.is_the_orders()) {
        fold_fact(&mut order, &event.kind, workflow);
    }
    Ok(Some(order))
}
