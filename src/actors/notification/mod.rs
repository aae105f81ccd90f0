//! The notification service: one message to the customer for every status
//! change of their orders, and for every refund, logged and stored.
//!
//! A notification is keyed by the event it reports, so replaying the log
//! after a crash rewrites the same key instead of sending it twice. Each is
//! also queued for the webhook subscriptions that want it ([`webhooks`]).

use super::consumer::{Cursor, Delivery, LogConsumer};
use super::supervision::guarded;
use super::ServiceEnv;
use crate::config::WebhookSettings;
use crate::domain::message::{self, Telling};
use crate::domain::subscription::{NewSubscription, Outgoing, Subscription};
use crate::domain::{CustomerId, Event, EventKind, Notification, PaymentMethod, Seq, Workflows};
use crate::error::NodeError;
use crate::store::{key_prefix, Store, Table, Tx, TxResult};
use actix::prelude::*;

// ---- messages ----

/// A customer's notifications, oldest first.
#[derive(Message)]
#[rtype(result = "Result<Vec<Notification>, NodeError>")]
pub struct ListNotifications(pub CustomerId);

/// A page of the notifications of orders of `workflows`, after the event
/// `after`: a live stream's backlog, read from the log up to this
/// service's position (what lies beyond is published live once written).
#[derive(Message)]
#[rtype(result = "Result<BacklogPage, NodeError>")]
pub struct NotificationsAfter {
    pub after: Seq,
    pub workflows: Vec<String>,
    /// Most log events read.
    pub limit: usize,
}

/// One page of a backlog; `next` is where the following page starts.
pub struct BacklogPage {
    pub notifications: Vec<Published>,
    pub next: Seq,
    /// Nothing written is left after `next`.
    pub done: bool,
}

/// Registers a webhook subscription.
#[derive(Message)]
#[rtype(result = "Result<Subscription, NodeError>")]
pub struct Subscribe {
    pub new: NewSubscription,
    /// The principal that makes it.
    pub owner: String,
}

#[derive(Message)]
#[rtype(result = "Result<Vec<Subscription>, NodeError>")]
pub struct ListSubscriptions;

#[derive(Message)]
#[rtype(result = "Result<(), NodeError>")]
pub struct Unsubscribe(pub u64);

/// Webhook deliveries set aside after failing for too long.
#[derive(Message)]
#[rtype(result = "Result<Vec<Outgoing>, NodeError>")]
pub struct FailedDeliveries;

/// Puts a set-aside delivery back in its queue.
#[derive(Message)]
#[rtype(result = "Result<(), NodeError>")]
pub struct RetryDelivery {
    pub subscription: u64,
    pub event: u64,
}

mod webhooks;

pub use webhooks::{clients, signature, Clients};

pub struct NotificationActor {
    cursor: Cursor,
    hooks: webhooks::Hooks,
    sender: webhooks::Sender,
    tick: std::time::Duration,
    /// Every notification, once its write committed, with its order's
    /// workflow, for live streams.
    live: tokio::sync::broadcast::Sender<Published>,
}

const NOTIFICATIONS: Table<Notification> = Table::new("notifications");
/// `order` → who is told, and how.
const RECIPIENTS: Table<Recipient> = Table::new("recipients");
/// The recipients of card orders: a card order's pending payment was
/// deferred, and its message says so. A table of its own rather than one
/// more key per order (every key is time under the store's writer lock).
const CARD_RECIPIENTS: Table<Recipient> = Table::new("recipients_card");

/// Who an order's messages go to, and in which words. Stored before its
/// workflow and language were (format 1: the customer alone); those read
/// as none, and get the built-in English.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Recipient {
    customer: CustomerId,
    // Grown since format 1: new fields go at the end (see store::codec).
    workflow: Option<String>,
    lang: Option<String>,
}
/// A checkpoint's words, for the message that its rejection cancels the
/// order (a key only for orders stopped at one).
const REJECTIONS: Table<String> = Table::new("recipient_rejections");
pub const NAME: &str = crate::service::Service::Notification.name();

impl NotificationActor {
    /// `http` sends the webhook deliveries (see [`webhooks::clients`]).
    pub fn new(
        env: &ServiceEnv,
        workflows: std::sync::Arc<Workflows>,
        webhooks: &WebhookSettings,
        http: Clients,
        live: tokio::sync::broadcast::Sender<Published>,
    ) -> Result<Self, NodeError> {
        let subscriptions = std::sync::Arc::new(webhooks::load(&env.store)?);
        Ok(NotificationActor {
            cursor: Cursor::load(env, NAME)?,
            hooks: webhooks::Hooks { subscriptions, workflows },
            sender: webhooks::Sender::new(http, webhooks),
            tick: std::time::Duration::from_millis(webhooks.tick_ms),
            live,
        })
    }
}

/// `customer \0 seq`: a customer's notifications sorted oldest first.
fn notification_key(n: &Notification) -> Vec<u8> {
    let mut key = key_prefix(n.customer.as_str());
    key.extend_from_slice(&n.event.to_be_bytes());
    key
}

crate::log_consumer!(NotificationActor);

impl LogConsumer for NotificationActor {
    fn cursor(&mut self) -> &mut Cursor {
        &mut self.cursor
    }

    fn apply_batch(&mut self, batch: &[Event], delivery: Delivery) -> Result<(), NodeError> {
        let hooks = self.hooks.clone();
        let store = self.cursor.store.clone();
        // What the write created, to publish once it committed (the write
        // may run its closure more than once: kept by event, once).
        let created = std::cell::RefCell::new(std::collections::BTreeMap::new());
        self.cursor.apply(batch, delivery, |tx, event| {
            if let Some(published) = on_event(tx, &store, event, &hooks)? {
                created.borrow_mut().insert(published.0.event, published);
            }
            Ok(())
        })?;
        for n in created.into_inner().into_values() {
            // Nobody listening is fine.
            let _ = self.live.send(n);
        }
        // Sent (logged) only after the batch is committed, so a batch that is
        // retried does not log twice.
        for event in batch {
            if let Some(status) = event.kind.status() {
                tracing::info!(
                    target: "fulfil::notification",
                    order = %event.order_id,
                    status = status.as_str(),
                    "notified the customer"
                );
            }
        }
        Ok(())
    }

    fn on_restart(&mut self) {
        // Deliveries in flight died with the failed instance: their queues
        // are sent again from their heads (at least once).
        self.sender.forget_in_flight();
    }

    fn on_start(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.tick, |act, ctx| act.send_due(ctx));
    }
}

/// A notification as published to live streams, with its order's workflow.
pub type Published = (Notification, Option<String>);

/// Records what `event` means for its customer; the notification, if one.
fn on_event(
    tx: &mut Tx<'_>,
    store: &Store,
    event: &Event,
    hooks: &webhooks::Hooks,
) -> TxResult<Option<Published>, NodeError> {
    let key = event.order_id.as_str();
    if let EventKind::OrderPlaced { customer, payment, workflow, lang, .. } = &event.kind {
        let table = if *payment == PaymentMethod::Card { CARD_RECIPIENTS } else { RECIPIENTS };
        let to =
            Recipient { customer: customer.clone(), workflow: Some(workflow.clone()), lang: lang.clone() };
        tx.put(table, key, &to)?;
    }
    let (to, payment) = match tx.get(RECIPIENTS, key)? {
        Some(to) => (to, None),
        None => match tx.get(CARD_RECIPIENTS, key)? {
            Some(to) => (to, Some(PaymentMethod::Card)),
            None => return Ok(None),
        },
    };
    if let EventKind::LegRejected { reason, .. } = &event.kind {
        tx.put(REJECTIONS, key, reason)?;
    }
    let rejection: Option<String> = match &event.kind {
        EventKind::OrderCanceled { .. } => tx.get(REJECTIONS, key)?,
        _ => None,
    };
    let cause = cause_of(store, event)?;
    let workflow = to.workflow.as_deref().and_then(|w| hooks.workflows.get(w).ok());
    let lang = to.lang.as_deref().or(workflow.map(|wf| wf.lang.as_str())).unwrap_or("en");
    let telling = Telling { payment, rejection: rejection.as_deref(), cause: cause.as_ref(), lang };
    let Some((status, subject)) = message::subject(&event.kind, telling.cause) else {
        return Ok(None);
    };
    let label = workflow.map(|wf| wf.label(status));
    let template = workflow.and_then(|wf| wf.template(lang, subject));
    let wording = template.zip(label.as_deref());
    let notification = Notification::for_event(event, &to.customer, &telling, wording);
    if let Some(n) = &notification {
        tx.put(NOTIFICATIONS, notification_key(n), n)?;
        hooks.queue(tx, n, to.workflow.as_deref(), event, &telling)?;
    }
    Ok(notification.map(|n| (n, to.workflow)))
}

/// The event that caused a refund (its cancel or rejection), read from the
/// log: what the refund's message gives as its reason.
fn cause_of(store: &Store, event: &Event) -> TxResult<Option<EventKind>, NodeError> {
    let (EventKind::PaymentRefunded { .. }, Some(seq)) = (&event.kind, event.caused_by) else {
        return Ok(None);
    };
    let read = store.read_log(seq.saturating_sub(1), 1)?;
    Ok(read.into_iter().find(|e| e.seq == seq).map(|e| e.kind))
}

impl Handler<Subscribe> for NotificationActor {
    type Result = Result<Subscription, NodeError>;

    fn handle(&mut self, msg: Subscribe, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, None, |act| {
            let subscription = msg.new.validate(act.cursor.store.generate_id()?, &msg.owner)?;
            act.sender.check(&subscription)?;
            let key = subscription.id.to_be_bytes();
            act.cursor.store.write(|tx| -> TxResult<(), NodeError> {
                tx.put(webhooks::SUBSCRIPTIONS, key, &subscription)
            })?;
            act.reload_subscriptions()?;
            Ok(subscription)
        })
    }
}

impl Handler<ListSubscriptions> for NotificationActor {
    type Result = Result<Vec<Subscription>, NodeError>;

    fn handle(&mut self, _: ListSubscriptions, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, None, |act| Ok(act.hooks.subscriptions.to_vec()))
    }
}

impl Handler<Unsubscribe> for NotificationActor {
    type Result = Result<(), NodeError>;

    fn handle(&mut self, msg: Unsubscribe, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, None, |act| act.unsubscribe(msg.0))
    }
}

impl Handler<FailedDeliveries> for NotificationActor {
    type Result = Result<Vec<Outgoing>, NodeError>;

    fn handle(&mut self, _: FailedDeliveries, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, None, |act| act.failed())
    }
}

impl Handler<RetryDelivery> for NotificationActor {
    type Result = Result<(), NodeError>;

    fn handle(&mut self, msg: RetryDelivery, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, None, |act| act.retry_failed(msg.subscription, msg.event))
    }
}

impl Handler<ListNotifications> for NotificationActor {
    type Result = Result<Vec<Notification>, NodeError>;

    fn handle(&mut self, msg: ListNotifications, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, None, |act| {
            Ok(act.cursor.store.scan_prefix(NOTIFICATIONS, key_prefix(msg.0.as_str()))?)
        })
    }
}

impl Handler<NotificationsAfter> for NotificationActor {
    type Result = Result<BacklogPage, NodeError>;

    fn handle(&mut self, msg: NotificationsAfter, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, None, |act| backlog(&act.cursor.store, &msg))
    }
}

/// The notifications of the events after `msg.after`, up to this
/// service's committed position, of orders of `msg.workflows`.
fn backlog(store: &Store, msg: &NotificationsAfter) -> Result<BacklogPage, NodeError> {
    let position = store.offset(NAME)?;
    let events = store.read_log(msg.after, msg.limit)?;
    let mut page = BacklogPage { notifications: Vec::new(), next: msg.after, done: false };
    for event in events.iter().take_while(|e| e.seq <= position) {
        page.next = event.seq;
        // Whether anyone is told of it: the one rule, the messages'.
        let told = message::subject(&event.kind, None).is_some();
        let Some(to) = told.then(|| recipient(store, &event.order_id)).transpose()?.flatten() else {
            continue;
        };
        let Some(workflow) = to.workflow.filter(|w| msg.workflows.contains(w)) else { continue };
        let mut key = key_prefix(to.customer.as_str());
        key.extend_from_slice(&event.seq.to_be_bytes());
        if let Some(n) = store.get(NOTIFICATIONS, key)? {
            page.notifications.push((n, Some(workflow)));
        }
    }
    page.done = page.next >= position || events.len() < msg.limit;
    Ok(page)
}

/// Who an order's messages go to, wherever it is kept.
fn recipient(store: &Store, order: &crate::domain::OrderId) -> Result<Option<Recipient>, NodeError> {
    match store.get(RECIPIENTS, order.as_str())? {
        Some(to) => Ok(Some(to)),
        None => Ok(store.get(CARD_RECIPIENTS, order.as_str())?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::testing::{money, order, paid, placed, placed_in, temp_store};
    use crate::domain::{CancelReason, OrderStatus, PaymentMethod};

    fn notifier(t: &crate::actors::testing::TestStore) -> Addr<NotificationActor> {
        let workflows = std::sync::Arc::new(Workflows::new(Default::default(), "shop"));
        let settings = crate::config::Settings::default().webhooks;
        let (live, _) = tokio::sync::broadcast::channel(16);
        let http = clients(&settings).unwrap();
        NotificationActor::new(&t.env(), workflows, &settings, http, live).unwrap().start()
    }

    #[actix::test]
    async fn one_notification_per_status_change_and_none_twice_after_a_restart() {
        let t = temp_store();
        let n = notifier(&t);
        t.append(
            &order(1),
            vec![
                placed("kim", &[("A", 1, 100)], PaymentMethod::Card),
                paid(100),
                EventKind::StockReserved { lines: vec![], units: vec![] },
                EventKind::OrderCanceled { reason: CancelReason::OutOfStock },
            ],
        );
        // The payment service refunds, naming the cancel as the cause.
        let refund = EventKind::PaymentRefunded { amount: money(100) };
        t.store.write::<_, ()>(|tx| tx.append(&order(1), Some(4), refund.clone())).map_err(|_| ()).unwrap();
        t.caught_up(NAME).await;
        let kim = CustomerId::parse("kim").unwrap();
        let sent = n.send(ListNotifications(kim.clone())).await.unwrap().unwrap();
        let statuses: Vec<OrderStatus> = sent.iter().map(|n| n.status).collect();
        let canceled = OrderStatus::Canceled;
        assert_eq!(statuses, [OrderStatus::Placed, OrderStatus::Paid, canceled, canceled]);
        let refunded = &sent[3].message;
        assert!(refunded.contains("refunded") && refunded.contains("(out of stock)"), "{refunded}");

        // A second instance with the offset reset replays the log: same keys.
        t.store.write::<_, NodeError>(|tx| tx.commit_offset(NAME, 0)).unwrap();
        let again = notifier(&t);
        t.caught_up(NAME).await;
        assert_eq!(again.send(ListNotifications(kim)).await.unwrap().unwrap(), sent);
    }

    /// A stream's backlog is read from the log page by page, only as far as
    /// the service has written, and holds only the workflows asked for.
    #[actix::test]
    async fn a_backlog_is_read_page_by_page_for_the_workflows_asked_for() {
        let t = temp_store();
        let n = notifier(&t);
        for (i, workflow) in ["taxi", "shop", "taxi", "taxi"].iter().enumerate() {
            let placed = placed_in(workflow, "kim", &[("A", 1, 100)], PaymentMethod::None);
            t.append(&order(i as u64 + 1), vec![placed, EventKind::OrderClosed]);
        }
        t.caught_up(NAME).await;
        let (mut after, mut got, mut pages) = (0, Vec::new(), 0);
        loop {
            let msg = NotificationsAfter { after, workflows: vec!["taxi".into()], limit: 3 };
            let page = n.send(msg).await.unwrap().unwrap();
            got.extend(page.notifications.into_iter().map(|(n, w)| (n.order_id, n.status, w.unwrap())));
            pages += 1;
            if page.done {
                break;
            }
            after = page.next;
        }
        assert_eq!(pages, 3, "8 events, 3 a page");
        let taxi = |i: u64, status| (order(i), status, "taxi".to_owned());
        let (placed, closed) = (OrderStatus::Placed, OrderStatus::Closed);
        assert_eq!(
            got,
            [
                taxi(1, placed),
                taxi(1, closed),
                taxi(3, placed),
                taxi(3, closed),
                taxi(4, placed),
                taxi(4, closed)
            ]
        );
    }

    /// A recipient stored before it held its workflow and language (format
    /// 1: the customer alone) still reads, and is told in built-in English.
    #[test]
    fn a_recipient_written_by_format_1_still_reads() {
        let mut v1 = crate::store::encode(&CustomerId::parse("kim").unwrap()).unwrap();
        v1[0] = 1;
        let r: Recipient = crate::store::decode(&v1).unwrap();
        assert_eq!((r.customer.as_str(), r.workflow, r.lang), ("kim", None, None));
    }
}
