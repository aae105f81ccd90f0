//! The notification service: one message to the customer for every status
//! change of their orders, and for every refund, logged and stored.
//!
//! An order's notifications are kept in one record (`told`), written
//! behind ([`super::write_behind`]): it is a pure function of the log, so
//! after a crash the same events are folded again into the same record,
//! where each notification is keyed by the event it reports, and nothing
//! is told twice. Each is also queued for the webhook subscriptions that
//! want it (`webhooks`); a batch that queued a delivery is committed
//! before the batch ends, so deliveries are never held back.

use super::consumer::{Cursor, Delivery, LogConsumer};
use super::supervision::guarded;
use super::write_behind::WriteBehind;
use super::ServiceEnv;
use crate::config::WebhookSettings;
use crate::domain::message;
use crate::domain::subscription::{NewSubscription, Outgoing, Subscription};
use crate::domain::{CustomerId, Event, Notification, Seq, Workflows};
use crate::error::NodeError;
use crate::store::{key_prefix, Reader, Store, Tx, TxResult};
use actix::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use told::{Notified, BY_CUSTOMER, NOTIFIED};

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
    /// The id it is kept under; `None`: a new one. On a cluster split
    /// into shards, every shard keeps it under the id the first gave it.
    pub id: Option<u64>,
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

mod follow;
mod from_store;
mod rule;
mod told;
mod webhooks;

pub use follow::follow;
pub use from_store::{backlog_in, notifications_in, subscriptions_in, Tail};
pub use told::stored;
pub use webhooks::{clients, signature, Clients};

pub struct NotificationActor {
    cursor: Cursor,
    hooks: webhooks::Hooks,
    sender: webhooks::Sender,
    tick: std::time::Duration,
    /// Every notification, once folded in, with its order's workflow, for
    /// live streams.
    live: tokio::sync::broadcast::Sender<Published>,
    /// The records, written behind.
    behind: WriteBehind,
}

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
            behind: WriteBehind::new(env, NAME),
        })
    }

    /// Holds records back for `every` instead (tests that look before the
    /// commit).
    pub fn committing_every(self, every: std::time::Duration) -> Self {
        NotificationActor { behind: self.behind.every(every), ..self }
    }

    /// A customer's notifications, oldest first.
    fn list(&self, customer: &CustomerId) -> Result<Vec<Notification>, NodeError> {
        let mut all = told::format_1_of(&self.cursor.store.reader(), customer)?;
        let prefix = key_prefix(customer.as_str());
        for entry in self.behind.entries_from(BY_CUSTOMER, &prefix)? {
            let (key, order) = entry?;
            if !key.starts_with(&prefix) {
                break;
            }
            if let Some(notified) = self.behind.get(NOTIFIED, order.as_str())? {
                all.extend(notified.notifications(&order));
            }
        }
        all.sort_by_key(|n| n.event);
        Ok(all)
    }

    /// What `event` told, with its order's workflow, in either format.
    fn told_of(&self, event: &Event) -> Result<Option<Published>, NodeError> {
        let record = self.behind.get(NOTIFIED, event.order_id.as_str())?;
        Ok(told::told_of(record.as_ref(), &self.cursor.store.reader(), event)?)
    }

    /// The notifications of the events after `msg.after`, up to what this
    /// service has folded in, of orders of `msg.workflows`.
    fn backlog(&self, msg: &NotificationsAfter) -> Result<BacklogPage, NodeError> {
        let position = self.behind.position()?;
        let events = self.cursor.store.read_log(msg.after, msg.limit)?;
        let mut page = BacklogPage { notifications: Vec::new(), next: msg.after, done: false };
        for event in events.iter().take_while(|e| e.seq <= position) {
            page.next = event.seq;
            // Whether anyone is told of it: the one rule, the messages'.
            if message::subject(&event.kind, None).is_none() {
                continue;
            }
            let Some((n, Some(workflow))) = self.told_of(event)? else { continue };
            if msg.workflows.contains(&workflow) {
                page.notifications.push((n, Some(workflow)));
            }
        }
        page.done = page.next >= position || events.len() < msg.limit;
        Ok(page)
    }
}

crate::log_consumer!(NotificationActor);

impl LogConsumer for NotificationActor {
    fn cursor(&mut self) -> &mut Cursor {
        &mut self.cursor
    }

    /// A batch that queued a webhook delivery is committed at once.
    fn apply_batch(&mut self, batch: &[Event], delivery: Delivery) -> Result<(), NodeError> {
        let (hooks, store) = (self.hooks.clone(), self.cursor.store.clone());
        // What the batch told, to publish once folded in (a write may run
        // its closure more than once: kept by event, once).
        let (created, queued) = (RefCell::new(BTreeMap::new()), Cell::new(false));
        let fold = |tx: &mut Tx<'_>, event: &Event, _: &_| {
            if let Some((published, to_hooks)) = on_event(tx, &store, event, &hooks)? {
                created.borrow_mut().insert(published.0.event, published);
                queued.set(queued.get() || to_hooks);
            }
            Ok(())
        };
        self.behind.apply(&self.cursor, batch, delivery, fold)?;
        if queued.get() {
            self.behind.commit_now()?;
        }
        for n in created.into_inner().into_values() {
            // Nobody listening is fine.
            let _ = self.live.send(n);
        }
        // Sent (logged) only after the batch is folded in, so a batch that
        // is retried does not log twice.
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

    fn behind(&mut self) -> Option<&mut WriteBehind> {
        Some(&mut self.behind)
    }

    fn on_start(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.tick, |act, ctx| act.send_due(ctx));
    }
}

/// A notification as published to live streams, with its order's workflow.
pub type Published = (Notification, Option<String>);

/// Records what `event` means for its customer: the notification, if one,
/// and whether it was queued for a webhook.
fn on_event(
    tx: &mut Tx<'_>,
    store: &Store,
    event: &Event,
    hooks: &webhooks::Hooks,
) -> TxResult<Option<(Published, bool)>, NodeError> {
    let Some(mut notified) = record_of(tx, &store.reader(), event)? else { return Ok(None) };
    let mut changed = rule::note(&mut notified, event);
    let cause = rule::cause_of(&store.reader(), event)?;
    let (telling, told) = rule::telling(&notified, event, cause.as_ref(), &hooks.workflows);
    let queued = match &told {
        Some(n) => hooks.queue(tx, n, notified.to.workflow.as_deref(), event, &telling)?,
        None => false,
    };
    if let Some(n) = &told {
        notified.tell(n, event.at_ms);
        changed = true;
    }
    if changed {
        tx.put(NOTIFIED, event.order_id.as_str(), &notified)?;
    }
    Ok(told.map(|n| ((n, notified.to.workflow), queued)))
}

/// The record of `event`'s order: as stored (in either format), or new
/// for its placing. A new one is indexed by its customer.
fn record_of(tx: &mut Tx<'_>, store: &Reader<'_>, event: &Event) -> TxResult<Option<Notified>, NodeError> {
    let order = &event.order_id;
    if let Some(notified) = tx.get(NOTIFIED, order.as_str())? {
        return Ok(Some(notified));
    }
    let Some(notified) = told::new_record(store, event)? else { return Ok(None) };
    tx.put(BY_CUSTOMER, told::customer_key(&notified.to.customer, order), order)?;
    Ok(Some(notified))
}

impl Handler<Subscribe> for NotificationActor {
    type Result = Result<Subscription, NodeError>;

    fn handle(&mut self, msg: Subscribe, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, None, |act| {
            let id = match msg.id {
                Some(id) => {
                    // Taken again (a retry), or refused: never another's replaced.
                    let held = act.cursor.store.get(webhooks::SUBSCRIPTIONS, id.to_be_bytes())?;
                    if held.is_some_and(|held| held.owner != msg.owner || held.url != msg.new.url.trim()) {
                        let why = format!("subscription {id} is another one");
                        return Err(crate::error::Refused::Conflict(why).into());
                    }
                    id
                }
                None => act.cursor.store.generate_id()?,
            };
            let subscription = msg.new.validate(id, &msg.owner)?;
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
        guarded(self, ctx, None, |act| act.list(&msg.0))
    }
}

impl Handler<NotificationsAfter> for NotificationActor {
    type Result = Result<BacklogPage, NodeError>;

    fn handle(&mut self, msg: NotificationsAfter, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, None, |act| act.backlog(&msg))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::told::Recipient;
    use super::*;
    use crate::actors::testing::{money, order, paid, placed, placed_in, temp_store};
    use crate::domain::{CancelReason, EventKind, OrderStatus, PaymentMethod};

    fn notifier(t: &crate::actors::testing::TestStore) -> Addr<NotificationActor> {
        build(t, crate::config::Settings::default().webhooks).start()
    }

    pub(super) fn build(
        t: &crate::actors::testing::TestStore,
        settings: WebhookSettings,
    ) -> NotificationActor {
        let (live, _) = tokio::sync::broadcast::channel(16);
        built(t, settings, live)
    }

    /// The service, publishing what it tells on `live`.
    pub(super) fn built(
        t: &crate::actors::testing::TestStore,
        settings: WebhookSettings,
        live: tokio::sync::broadcast::Sender<Published>,
    ) -> NotificationActor {
        let workflows = std::sync::Arc::new(Workflows::new(Default::default(), "shop"));
        let http = clients(&settings).unwrap();
        NotificationActor::new(&t.env(), workflows, &settings, http, live).unwrap()
    }

    fn keys_of(stats: &crate::store::WriterReading, table: &str) -> u64 {
        stats.by_table.get(table).copied().unwrap_or(0)
    }

    /// Records are written behind: listed at once, written once an order
    /// for all it was told, with the offset; an instance started again
    /// before the commit folds the same events into the same records.
    #[actix::test]
    async fn notifications_are_listed_at_once_written_once_an_order_and_folded_again_after_a_crash() {
        let t = temp_store();
        let an_hour = std::time::Duration::from_secs(3600);
        let n = build(&t, crate::config::Settings::default().webhooks).committing_every(an_hour).start();
        for i in 1..=3 {
            t.append(&order(i), vec![placed("kim", &[("A", 1, 100)], PaymentMethod::Card)]);
        }
        for i in 1..=3 {
            t.append(&order(i), vec![paid(100), EventKind::OrderReserved { units: vec![] }]);
        }
        t.caught_up(NAME).await;
        let kim = CustomerId::parse("kim").unwrap();
        let seen = n.send(ListNotifications(kim.clone())).await.unwrap().unwrap();
        assert_eq!(seen.len(), 9, "listed at once");
        assert!(seen.windows(2).all(|w| w[0].event < w[1].event), "oldest first");
        assert_eq!(stored(&t.store).unwrap(), [], "not written yet");
        assert_eq!(t.store.offset(NAME).unwrap(), 0);

        let again = build(&t, crate::config::Settings::default().webhooks).committing_every(an_hour).start();
        t.caught_up(NAME).await;
        assert_eq!(again.send(ListNotifications(kim.clone())).await.unwrap().unwrap(), seen);

        let before = t.store.writer_stats().read();
        again.send(crate::actors::consumer::CommitHeldBack).await.unwrap().unwrap();
        let written = t.store.writer_stats().read();
        assert_eq!(written.commits - before.commits, 1);
        assert_eq!(keys_of(&written, "notified") - keys_of(&before, "notified"), 3, "one key an order");
        assert_eq!(keys_of(&written, "notified_by_customer") - keys_of(&before, "notified_by_customer"), 3);
        assert_eq!(stored(&t.store).unwrap(), seen);
        assert_eq!(t.store.offset(NAME).unwrap(), t.store.head());
    }

    /// A webhook delivery is never held back: the batch that queued it is
    /// committed before the service goes on.
    #[actix::test]
    async fn a_batch_that_queues_a_webhook_delivery_is_committed_at_once() {
        let t = temp_store();
        let mut settings = crate::config::Settings::default().webhooks;
        settings.allow_private_targets = true;
        let an_hour = std::time::Duration::from_secs(3600);
        let n = build(&t, settings).committing_every(an_hour).start();
        let new = NewSubscription {
            url: "http://127.0.0.1:9/hook".into(),
            workflow: None,
            party: None,
            customer: Some("lee".into()),
            events: Vec::new(),
            secret: None,
            lang: None,
        };
        n.send(Subscribe { new, owner: "lee".into(), id: None }).await.unwrap().unwrap();
        t.append(&order(1), vec![placed("kim", &[("A", 1, 100)], PaymentMethod::None)]);
        t.caught_up(NAME).await;
        assert_eq!(t.store.offset(NAME).unwrap(), 0, "nothing for the subscription: held back");
        t.append(&order(2), vec![placed("lee", &[("A", 1, 100)], PaymentMethod::None)]);
        t.caught_up(NAME).await;
        assert_eq!(t.store.offset(NAME).unwrap(), t.store.head(), "queued: committed");
        assert_eq!(stored(&t.store).unwrap().len(), 2, "with what was held back before it");
    }

    /// A store written by an older node (format 1: a key a notification
    /// and a recipient) still lists what it told, and an order of it that
    /// changes again is told in format 2, in the recipient's words.
    #[actix::test]
    async fn notifications_stored_by_format_1_are_still_listed_and_their_orders_go_on() {
        let t = temp_store();
        let kim = CustomerId::parse("kim").unwrap();
        t.append(&order(1), vec![placed("kim", &[("A", 1, 100)], PaymentMethod::Card)]);
        let placed_seq = t.store.head();
        let old = Notification {
            event: placed_seq,
            order_id: order(1),
            customer: kim.clone(),
            status: crate::domain::OrderStatus::Placed,
            message: "told by format 1".into(),
            at: crate::domain::rfc3339(0),
        };
        let to = Recipient { customer: kim.clone(), workflow: Some("shop".into()), lang: None };
        t.store
            .write::<_, NodeError>(|tx| {
                let mut key = key_prefix("kim");
                key.extend_from_slice(&placed_seq.to_be_bytes());
                tx.put(told::NOTIFICATIONS, key, &old)?;
                tx.put(told::CARD_RECIPIENTS, order(1).as_str(), &to)?;
                tx.commit_offset(NAME, placed_seq)
            })
            .unwrap();
        let n = notifier(&t);
        t.append(&order(1), vec![EventKind::OrderCanceled { reason: CancelReason::CustomerRequest }]);
        t.caught_up(NAME).await;
        let listed = n.send(ListNotifications(kim)).await.unwrap().unwrap();
        let messages: Vec<&str> = listed.iter().map(|n| n.message.as_str()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert_eq!(messages[0], "told by format 1");
        assert_eq!(listed[1].status, crate::domain::OrderStatus::Canceled);
        let backlog = n.send(NotificationsAfter { after: 0, workflows: vec!["shop".into()], limit: 10 });
        let page = backlog.await.unwrap().unwrap();
        let events: Vec<Seq> = page.notifications.iter().map(|(n, _)| n.event).collect();
        assert_eq!(events, [placed_seq, placed_seq + 1], "the backlog reads both formats");
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
}
