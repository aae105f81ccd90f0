//! Webhooks: subscriptions, an outbox written with each notification, and
//! the sender that drains it.
//!
//! A notification that a subscription wants is written to that
//! subscription's queue in the same write as the notification itself, so
//! nothing is lost on a crash and nothing is queued twice on a replay (the
//! key is the subscription and the notification's event). Each queue is
//! sent in order, one delivery at a time: the head is POSTed, signed with
//! the subscription's secret; a 2xx removes it, anything else retries it
//! with exponential backoff and jitter, and a delivery that still fails
//! after `webhooks.give_up_after_ms` is set aside (`/admin/deliveries/failed`)
//! so the queue goes on. One receiver's failures or slowness hold up only
//! its own queue: sending runs beside the service's work, never in it.

use super::NotificationActor;
use crate::config::WebhookSettings;
use crate::domain::message::{self, Telling};
use crate::domain::payment::Backoff;
use crate::domain::subscription::{public_address, public_target, Outgoing, Subscription};
use crate::domain::{Event, Notification, Workflow, Workflows};
use crate::error::NodeError;
use crate::store::{Store, StoreError, Table, Tx, TxResult};
use actix::prelude::*;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Subscriptions by id.
pub(super) const SUBSCRIPTIONS: Table<Subscription> = Table::new("subscriptions");
/// `subscription(be) event(be)` → a delivery waiting: each queue in order.
const OUTBOX: Table<Outgoing> = Table::new("webhook_outbox");
/// Deliveries that failed for longer than `give_up_after_ms`, same keys.
const FAILED: Table<Outgoing> = Table::new("webhook_failed");

fn queue_key(subscription: u64, event: u64) -> Vec<u8> {
    let mut key = subscription.to_be_bytes().to_vec();
    key.extend_from_slice(&event.to_be_bytes());
    key
}

/// What the notification service needs to queue deliveries while it
/// applies events: the subscriptions and the workflows.
#[derive(Clone)]
pub struct Hooks {
    pub subscriptions: Arc<Vec<Subscription>>,
    pub workflows: Arc<Workflows>,
}

impl Hooks {
    /// Queues `n` (about an order of `workflow`, from `event`, told as
    /// `telling` says) for every subscription that wants it, in the write
    /// that stores it, in the subscriber's words (see [`words_for`]).
    /// Whether any wanted it.
    pub fn queue(
        &self,
        tx: &mut Tx<'_>,
        n: &Notification,
        workflow: Option<&str>,
        event: &Event,
        telling: &Telling<'_>,
    ) -> TxResult<bool, NodeError> {
        if self.subscriptions.is_empty() {
            return Ok(false);
        }
        let wf = workflow.and_then(|w| self.workflows.get(w).ok());
        let roles: Vec<&str> = wf.map(|w| w.party_roles().collect()).unwrap_or_default();
        let label = wf.map(|w| w.label(n.status)).unwrap_or_else(|| n.status.as_str().replace('_', " "));
        let mut queued = false;
        for s in self.subscriptions.iter().filter(|s| s.wants(n, workflow, &roles)) {
            let mut notification = n.clone();
            if let Some(message) = wf.and_then(|wf| words_for(s, wf, event, telling, &label)) {
                notification.message = message;
            }
            let out = Outgoing { subscription: s.id, notification, label: label.clone() };
            tx.put(OUTBOX, queue_key(s.id, n.event), &out)?;
            queued = true;
        }
        Ok(queued)
    }
}

/// What subscription `s` is told of `event` in `wf`, where it differs
/// from the customer's message: a party's words (in the subscription's
/// language where the workflow has them), else the customer's words in the
/// subscription's language. `None`: the customer's message as it is.
fn words_for(
    s: &Subscription,
    wf: &Workflow,
    event: &Event,
    telling: &Telling<'_>,
    label: &str,
) -> Option<String> {
    let (_, subject) = message::subject(&event.kind, telling.cause)?;
    let asked = s.lang.as_deref();
    let party_words = s.party.as_deref().and_then(|party| wf.party_template(party, asked, subject));
    let customer_words = || asked.and_then(|l| wf.template(l, subject).map(|t| (t, l)));
    match party_words.or_else(customer_words) {
        Some((template, lang)) => {
            Some(message::render_for(template, event, &Telling { lang, ..*telling }, label))
        }
        // English is built in, without templates.
        None if asked == Some("en") => Some(message::built_in(event, &Telling { lang: "en", ..*telling })),
        None => None,
    }
}

/// Every subscription, as stored.
pub fn load(store: &Store) -> Result<Vec<Subscription>, StoreError> {
    store.scan_prefix(SUBSCRIPTIONS, [])
}

/// One queue's sending state (in memory: after a restart, every queue is
/// tried at once).
#[derive(Default)]
pub struct QueueState {
    in_flight: bool,
    attempts: u32,
    next_try: Option<Instant>,
    failing_since: Option<Instant>,
}

/// The sender's state.
pub struct Sender {
    clients: Clients,
    settings: WebhookSettings,
    queues: HashMap<u64, QueueState>,
}

/// The HTTP clients deliveries are sent with: one that reaches any
/// address, for the operator's subscriptions, and one that reaches only
/// public ones, for everyone else's (unless `allow_private_targets`), so
/// that a customer cannot make the node call its own network.
#[derive(Clone)]
pub struct Clients {
    any: reqwest::Client,
    public: reqwest::Client,
}

/// Both clients: http and https (rustls, with Mozilla's roots and
/// `extra_ca_file`'s), a timeout per attempt, and no redirects (a receiver
/// that moves answers 3xx, a failure, rather than having a signed body sent
/// somewhere its subscription did not name).
pub fn clients(settings: &WebhookSettings) -> Result<Clients, String> {
    let roots = extra_roots(settings)?;
    let build = |public: bool| {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .redirect(reqwest::redirect::Policy::none());
        for root in &roots {
            builder = builder.add_root_certificate(root.clone());
        }
        if public {
            // Not through a proxy either: the proxy would resolve the name.
            builder = builder.dns_resolver(Arc::new(PublicOnly)).no_proxy();
        }
        builder.build().map_err(|e| format!("the webhook client does not start: {e}"))
    };
    Ok(Clients { any: build(false)?, public: build(true)? })
}

/// The certificates of `extra_ca_file`, if one is named.
fn extra_roots(settings: &WebhookSettings) -> Result<Vec<reqwest::Certificate>, String> {
    if settings.extra_ca_file.is_empty() {
        return Ok(Vec::new());
    }
    let place = format!("webhooks.extra_ca_file {:?}", settings.extra_ca_file);
    let pem = std::fs::read(&settings.extra_ca_file).map_err(|e| format!("{place}: {e}"))?;
    let roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("{place}: {e}"))?;
    if roots.is_empty() {
        return Err(format!("{place}: holds no PEM certificate"));
    }
    Ok(roots)
}

/// Resolves a receiver's name to its public addresses only: a name that
/// points into the node's own network reaches nothing.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<std::net::SocketAddr> = found.filter(|a| public_address(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{} has no public address", name.as_str()).into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl Sender {
    pub fn new(clients: Clients, settings: &WebhookSettings) -> Sender {
        Sender { clients, settings: settings.clone(), queues: HashMap::new() }
    }

    /// The client for `s`, if it may be sent to: the operator's reach any
    /// address; anyone else's, public ones only.
    fn client_for(&self, s: &Subscription) -> Option<&reqwest::Client> {
        if s.by_operator() || self.settings.allow_private_targets {
            return Some(&self.clients.any);
        }
        public_target(&s.url).then_some(&self.clients.public)
    }

    /// Refuses a subscription that `owner`'s deliveries could not reach.
    pub fn check(&self, s: &Subscription) -> Result<(), NodeError> {
        match self.client_for(s) {
            Some(_) => Ok(()),
            None => Err(NodeError::from(crate::domain::Invalid::new(
                "url must be a public address: only the operator subscribes receivers inside the \
                 node's network (or set webhooks.allow_private_targets)",
            ))),
        }
    }

    /// After a restart: nothing is in flight any more.
    pub fn forget_in_flight(&mut self) {
        self.queues.clear();
    }
}

/// `sha256=<hex>` of HMAC-SHA256(secret, body).
pub fn signature(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body.as_bytes());
    let bytes = mac.finalize().into_bytes();
    format!("sha256={}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The head of a subscription's queue.
fn head(store: &Store, subscription: u64) -> Result<Option<(Vec<u8>, Outgoing)>, StoreError> {
    let prefix = subscription.to_be_bytes();
    match store.entries_from(OUTBOX, prefix)?.next() {
        Some(Ok((key, out))) if key.starts_with(&prefix) => Ok(Some((key, out))),
        Some(Err(e)) => Err(e),
        _ => Ok(None),
    }
}

impl NotificationActor {
    /// Sends the head of every queue that is due and not in flight.
    pub(super) fn send_due(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        for s in self.hooks.subscriptions.clone().iter() {
            let state = self.sender.queues.entry(s.id).or_default();
            if state.in_flight || state.next_try.is_some_and(|t| t > now) {
                continue;
            }
            let Ok(Some((key, out))) = head(&self.cursor.store, s.id) else { continue };
            let Some(http) = self.sender.client_for(s).cloned() else {
                // Made before the guard, to an internal address: never sent.
                self.delivered(s.id, key, out, false);
                continue;
            };
            self.sender.queues.entry(s.id).or_default().in_flight = true;
            let body = out.body();
            let mut request = http.post(&s.url).header("content-type", "application/json");
            request = request.header("Fulfil-Delivery-Id", out.id());
            if let Some(secret) = &s.secret {
                request = request.header("Fulfil-Signature", signature(secret, &body));
            }
            let sent = async move { request.body(body).send().await.map(|r| r.status().is_success()) };
            let id = s.id;
            ctx.spawn(sent.into_actor(self).map(move |answer, act, _| {
                act.delivered(id, key, out, matches!(answer, Ok(true)));
            }));
        }
    }

    /// Records how one delivery went.
    fn delivered(&mut self, subscription: u64, key: Vec<u8>, out: Outgoing, ok: bool) {
        let settings = self.sender.settings.clone();
        let state = self.sender.queues.entry(subscription).or_default();
        state.in_flight = false;
        let store = &self.cursor.store;
        if ok {
            *state = QueueState::default();
            if let Err(e) = store.write(|tx| -> TxResult<(), NodeError> { tx.remove(OUTBOX, &key) }) {
                // It stays at the head and is sent again: at least once.
                tracing::warn!(subscription, error = ?e, "recording a webhook delivery failed");
            }
            return;
        }
        state.attempts += 1;
        let since = *state.failing_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= Duration::from_millis(settings.give_up_after_ms) {
            tracing::warn!(subscription, delivery = %out.id(), attempts = state.attempts, "webhook delivery set aside");
            *state = QueueState::default();
            let set_aside = store.write(|tx| -> TxResult<(), NodeError> {
                tx.remove(OUTBOX, &key)?;
                tx.put(FAILED, &key, &out)
            });
            if let Err(e) = set_aside {
                // It stays at the head and is tried again.
                tracing::warn!(subscription, error = ?e, "setting a webhook delivery aside failed");
            }
            return;
        }
        let doubling = Backoff { min_ms: settings.retry_min_ms, max_ms: settings.retry_max_ms };
        let backoff = doubling.after(state.attempts.saturating_sub(1));
        // Jitter: up to a quarter more, so receivers that fail together do
        // not get their retries together.
        let jitter = fastrand::u64(0..=backoff / 4);
        state.next_try = Some(Instant::now() + Duration::from_millis(backoff + jitter));
    }

    /// Deliveries set aside, oldest first.
    pub(super) fn failed(&self) -> Result<Vec<Outgoing>, NodeError> {
        Ok(self.cursor.store.scan_prefix(FAILED, [])?)
    }

    /// Puts a set-aside delivery back in its queue.
    pub(super) fn retry_failed(&self, subscription: u64, event: u64) -> Result<(), NodeError> {
        let key = queue_key(subscription, event);
        let Some(out) = self.cursor.store.get(FAILED, &key)? else {
            return Err(NodeError::not_found("delivery", format!("{subscription}-{event}")));
        };
        self.cursor.store.write(|tx| -> TxResult<(), NodeError> {
            tx.remove(FAILED, &key)?;
            tx.put(OUTBOX, &key, &out)
        })?;
        Ok(())
    }

    /// Drops a subscription and what waits in its queue.
    pub(super) fn unsubscribe(&mut self, id: u64) -> Result<(), NodeError> {
        let store = &self.cursor.store;
        if store.get(SUBSCRIPTIONS, id.to_be_bytes())?.is_none() {
            return Err(NodeError::not_found("subscription", id));
        }
        let waiting: Vec<Vec<u8>> = store
            .entries_from(OUTBOX, id.to_be_bytes())?
            .map(|e| e.map(|(k, _)| k))
            .take_while(|k| k.as_ref().is_ok_and(|k| k.starts_with(&id.to_be_bytes())))
            .collect::<Result<_, _>>()?;
        store.write(|tx| -> TxResult<(), NodeError> {
            for key in &waiting {
                tx.remove(OUTBOX, key)?;
            }
            tx.remove(SUBSCRIPTIONS, id.to_be_bytes())
        })?;
        self.reload_subscriptions()
    }

    pub(super) fn reload_subscriptions(&mut self) -> Result<(), NodeError> {
        self.hooks.subscriptions = Arc::new(load(&self.cursor.store)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::dns::Resolve;

    /// A name that resolves into the node's own network reaches nothing
    /// through the guarded client, whatever the URL's spelling.
    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_has_no_public_address() {
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let refused = PublicOnly.resolve(name).await.err().expect("refused");
        assert!(refused.to_string().contains("no public address"), "{refused}");
    }
}
