//! When applying an event fails: to whom the failure belongs, and what
//! happens next. One order's failure sets its event aside for that order
//! and retries it by itself with backoff; the whole service's failure
//! pauses or restarts the service (see the module above).

use super::{Cursor, Delivery, LogConsumer, Pump, RetryLetter, RETRY_AFTER, STORE_DOWN_WAIT};
use crate::domain::Event;
use crate::error::NodeError;
use crate::logging::ERRORS;
use crate::store::{DeadLetter, StoreError};
use actix::prelude::*;

/// The whole service failed (not one order): readiness says so, the batch
/// is tried again after a pause, and after a panic the actor restarts.
pub(super) fn service_failed<A: LogConsumer>(
    act: &mut A,
    ctx: &mut Context<A>,
    batch: &[Event],
    error: String,
    panicked: bool,
) {
    let cursor = act.cursor();
    if let Some(held_back) = ERRORS.allow(cursor.name) {
        tracing::error!(service = cursor.name, error = %error, events = batch.len(), held_back, "applying events failed");
    }
    cursor.sup.health().failed(cursor.name, error);
    match panicked {
        true => ctx.stop(),
        false => drop(ctx.notify_later(Pump, RETRY_AFTER)),
    }
}

/// Applying an order's event failed: find the event, set it aside for its
/// order alone, and go on with the others at once. The service stays ready.
pub(super) fn order_failed<A: LogConsumer>(
    act: &mut A,
    ctx: &mut Context<A>,
    batch: &[Event],
    error: String,
) {
    if batch.len() == 1 && !held_back_committed(act) {
        ctx.notify_later(Pump, RETRY_AFTER);
        return;
    }
    let cursor = act.cursor();
    cursor.sup.metrics().event_failures.with_label_values(&[cursor.name]).inc();
    match batch {
        [event] => {
            if let Some(letter) = set_aside(cursor, event, &error) {
                schedule_retry(act, ctx, &letter);
            }
        }
        _ => cursor.single = true,
    }
    ctx.notify(Pump);
}

/// While catching up for a command: narrows a failed batch down, or sets
/// its one event aside and leaves its retry to [`schedule_pending`].
pub(super) fn set_aside_now<A: LogConsumer>(act: &mut A, batch: &[Event], error: &str) {
    if batch.len() == 1 && !held_back_committed(act) {
        return;
    }
    let cursor = act.cursor();
    cursor.sup.metrics().event_failures.with_label_values(&[cursor.name]).inc();
    match batch {
        [event] => {
            if let Some(letter) = set_aside(cursor, event, error) {
                cursor.unscheduled.push(letter);
            }
        }
        _ => cursor.single = true,
    }
}

/// Schedules the retries of events set aside while catching up for a
/// command; call with the actor's context after the command.
pub fn schedule_pending<A: LogConsumer>(act: &mut A, ctx: &mut Context<A>) {
    for letter in std::mem::take(&mut act.cursor().unscheduled) {
        schedule_retry(act, ctx, &letter);
    }
}

/// Before an event is set aside (which moves the offset past it): what the
/// consumer holds back is committed first. When that fails, nothing is set
/// aside and the event is tried again later.
fn held_back_committed<A: LogConsumer>(act: &mut A) -> bool {
    match act.commit_held_back() {
        Ok(()) => true,
        Err(e) => {
            let name = act.cursor().name;
            tracing::warn!(service = name, error = %e, "committing held-back writes before a set-aside failed");
            false
        }
    }
}

fn set_aside(cursor: &mut Cursor, event: &Event, error: &str) -> Option<DeadLetter> {
    match cursor.store.set_aside(cursor.name, event, error, 1) {
        Ok(letter) => {
            tracing::warn!(
                service = cursor.name,
                seq = event.seq,
                order = %event.order_id,
                dead_letter = letter.id,
                error,
                "an event of one order failed; set aside for that order, the others go on"
            );
            cursor.offset = cursor.offset.max(event.seq);
            cursor.single = false;
            cursor.quarantined.insert(event.order_id.clone());
            Some(letter)
        }
        Err(e) => {
            tracing::error!(service = cursor.name, error = %e, "setting an event aside failed");
            None
        }
    }
}

/// Tries `letter` again after the backoff for its attempts so far, while
/// it has attempts left (`poison_after` in all).
fn schedule_retry<A: LogConsumer>(act: &mut A, ctx: &mut Context<A>, letter: &DeadLetter) {
    let sup = &act.cursor().sup;
    if letter.attempts < sup.poison_after() {
        ctx.notify_later(RetryLetter(letter.id), sup.backoff(letter.attempts));
    } else {
        tracing::error!(
            service = sup.name,
            order = %letter.order_id,
            dead_letter = letter.id,
            "event set aside as a dead letter after {} failures: it waits for an operator",
            letter.attempts
        );
    }
}

/// An automatic retry of a set-aside event (see [`RetryLetter`]).
pub fn retry_letter<A: LogConsumer>(act: &mut A, ctx: &mut Context<A>, id: u64) {
    let letter = match act.cursor().store.dead_letter(id) {
        Ok(Some(letter)) => letter,
        Ok(None) => return, // put back already
        Err(e) => return tracing::error!(error = %e, "reading a dead letter failed"),
    };
    match redeliver(act, ctx, letter) {
        Ok(()) => {}
        // Not the event's fault: try again later without counting it.
        Err(NodeError::Store(StoreError::Unavailable(_))) => {
            ctx.notify_later(RetryLetter(id), STORE_DOWN_WAIT);
        }
        Err(NodeError::Call(crate::error::CallError::Restarting { retry_after, .. })) => {
            ctx.notify_later(RetryLetter(id), retry_after);
        }
        Err(e) => match act.cursor().store.letter_failed_again(id, &e.to_string()) {
            Ok(Some(letter)) => schedule_retry(act, ctx, &letter),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "recording a failed retry failed"),
        },
    }
}

/// Schedules the retries a restart (of the actor or the node) forgot.
pub(super) fn resume_retries<A: LogConsumer>(act: &mut A, ctx: &mut Context<A>) {
    let cursor = act.cursor();
    let letters = match cursor.store.dead_letters() {
        Ok(letters) => letters,
        Err(e) => return tracing::error!(error = %e, "reading dead letters failed"),
    };
    for letter in
        letters.iter().filter(|l| l.service == cursor.name && l.attempts < cursor.sup.poison_after())
    {
        ctx.notify_later(RetryLetter(letter.id), cursor.sup.backoff(letter.attempts));
    }
}

/// Puts a dead letter back (see [`super::Redeliver`]).
pub fn redeliver<A: LogConsumer>(
    act: &mut A,
    ctx: &mut Context<A>,
    letter: DeadLetter,
) -> Result<(), NodeError> {
    let event = act
        .cursor()
        .store
        .read_event(letter.seq)?
        .ok_or_else(|| NodeError::not_found("event", letter.seq))?;
    crate::actors::supervision::guarded(act, ctx, Some(&event.order_id), |act| {
        act.apply_batch(std::slice::from_ref(&event), Delivery::Redelivery)
    })?;
    let cursor = act.cursor();
    let left = cursor.store.dead_letters_of(&event.order_id)?;
    if !left.iter().any(|l| l.service == cursor.name) {
        cursor.quarantined.remove(&event.order_id);
    }
    tracing::info!(service = act.cursor().name, dead_letter = letter.id, "dead letter redelivered");
    Ok(())
}
