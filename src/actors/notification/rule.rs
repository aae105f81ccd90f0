//! The notification service's one rule for an event of an order: what it
//! tells the customer, and what the order's record keeps. The service
//! runs it on each event (and queues the webhooks it asks for); a store
//! read alone runs it on the events past the service's offset
//! (`from_store`), so both tell the same.

use super::told::Notified;
use crate::domain::message::{self, Telling};
use crate::domain::{Event, EventKind, Notification, Workflows};
use crate::store::{Reader, StoreError};

/// Notes in the order's record what its later messages need (a
/// checkpoint's words); whether the record changed.
pub(super) fn note(notified: &mut Notified, event: &Event) -> bool {
    if let EventKind::LegRejected { reason, .. } = &event.kind {
        notified.rejection = Some(reason.clone());
        return true;
    }
    matches!(event.kind, EventKind::OrderPlaced { .. })
}

/// What `event` tells the record's customer, if anything, and the terms
/// it is told in (which the webhooks' own words use too).
pub(super) fn telling<'a>(
    notified: &'a Notified,
    event: &Event,
    cause: Option<&'a EventKind>,
    workflows: &'a Workflows,
) -> (Telling<'a>, Option<Notification>) {
    let rejection = match &event.kind {
        EventKind::OrderCanceled { .. } => notified.rejection.as_deref(),
        _ => None,
    };
    let to = &notified.to;
    let workflow = to.workflow.as_deref().and_then(|w| workflows.get(w).ok());
    let lang = to.lang.as_deref().or(workflow.map(|wf| wf.lang.as_str())).unwrap_or("en");
    let telling = Telling { payment: notified.payment(), rejection, cause, lang };
    let told = message::subject(&event.kind, telling.cause).and_then(|(status, subject)| {
        let label = workflow.map(|wf| wf.label(status));
        let template = workflow.and_then(|wf| wf.template(lang, subject));
        Notification::for_event(event, &to.customer, &telling, template.zip(label.as_deref()))
    });
    (telling, told)
}

/// Folds `event` into its order's record as the service does, without
/// its webhooks.
pub(super) fn fold(notified: &mut Notified, event: &Event, cause: Option<&EventKind>, workflows: &Workflows) {
    note(notified, event);
    if let (_, Some(n)) = telling(notified, event, cause, workflows) {
        notified.tell(&n, event.at_ms);
    }
}

/// The event that caused a refund (its cancel or rejection), read from the
/// log: what the refund's message gives as its reason.
pub(super) fn cause_of(store: &Reader<'_>, event: &Event) -> Result<Option<EventKind>, StoreError> {
    let (EventKind::PaymentRefunded { .. }, Some(seq)) = (&event.kind, event.caused_by) else {
        return Ok(None);
    };
    let read = store.read_log(seq.saturating_sub(1), 1)?;
    Ok(read.into_iter().find(|e| e.seq == seq).map(|e| e.kind))
}
