//! A product and a pool's free units answered from a store the inventory
//! service does not run on: a failover follower's copy of the leader's
//! (`http::forward::reads`).

use super::{on_event, CALENDARS, NAME, PRODUCTS};
use crate::actors::recorded::Recorded;
use crate::domain::calendar::Calendar;
use crate::domain::stay::Stay;
use crate::domain::{OrderId, Product, Sku};
use crate::error::NodeError;
use crate::store::{Reader, Tx, UNFOLDED_AT_MOST};
use std::collections::hash_map::{Entry, HashMap};

/// A product as the service would answer for it, read from a store it
/// does not run on (a failover follower's copy of the leader's): the
/// stored state with the events after the service's offset folded on by
/// its own rule (`folded`). `None` when this store cannot tell.
pub fn product_in(store: &Reader<'_>, sku: &Sku) -> Result<Option<Product>, NodeError> {
    let Some(tx) = folded(store)? else { return Ok(None) };
    let product = tx.get::<Product, NodeError>(PRODUCTS, sku.as_str()).map_err(from_tx)?;
    product.map(Some).ok_or_else(|| NodeError::not_found("product", sku))
}

/// The units of `sku` free for the whole `stay`, as [`product_in`].
pub fn availability_in(store: &Reader<'_>, sku: &Sku, stay: &Stay) -> Result<Option<Vec<String>>, NodeError> {
    let Some(tx) = folded(store)? else { return Ok(None) };
    let product = tx.get::<Product, NodeError>(PRODUCTS, sku.as_str()).map_err(from_tx)?;
    let product = product.ok_or_else(|| NodeError::not_found("product", sku))?;
    let calendar: Calendar = tx.get(CALENDARS, sku.as_str()).map_err(from_tx)?.unwrap_or_default();
    Ok(Some(calendar.free(&product.units, stay).into_iter().cloned().collect()))
}

/// The service's state in `store` with the events after its offset folded
/// on by its own rule ([`on_event`]), in a write that is never committed.
///
/// Exact for the same reason as the order's (`actors::order::from_store`):
/// a command's write goes with what is held back whenever it touches it,
/// so the stored state holds exactly the facts up to the offset; a
/// restarted service folds the events after it the same way. Events of an
/// order the service set one aside of are left out, as they wait behind
/// it there. `None` past [`UNFOLDED_AT_MOST`] events.
fn folded<'a>(store: &Reader<'a>) -> Result<Option<Tx<'a>>, NodeError> {
    let Some(unfolded) = store.unfolded(NAME, UNFOLDED_AT_MOST)? else { return Ok(None) };
    let mut tx = store.scratch();
    // What it would append is in the log already, or will be: not wanted.
    let recorded = Recorded::default();
    let mut set_aside: HashMap<&OrderId, bool> = HashMap::new();
    for event in &unfolded {
        let aside = match set_aside.entry(&event.order_id) {
            Entry::Occupied(known) => *known.get(),
            Entry::Vacant(new) => *new.insert(store.set_aside(&event.order_id, NAME)?),
        };
        if !aside {
            on_event(&mut tx, event, &recorded).map_err(from_tx)?;
        }
    }
    Ok(Some(tx))
}

fn from_tx(e: crate::store::TxError<NodeError>) -> NodeError {
    crate::store::WriteError::from(e).flatten()
}
