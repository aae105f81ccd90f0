//! Publishing the log to the stream, each event once and in order.
//!
//! The stream itself says where the export stands: at start (and after any
//! failure) the exporter reads the stream's last message and goes on from
//! the event after it, so no offset is kept beside the log, and an event
//! is never published twice, however long the node was away. Each publish
//! names the stream sequence it must follow (JetStream's
//! `Nats-Expected-Last-Sequence`): if anything else wrote to the stream in
//! between, the publish is refused rather than stored out of order, and
//! the exporter starts over from the stream's new end. Each message also
//! carries `Nats-Msg-Id` (`<store id>-<seq>`), so JetStream itself drops a
//! repeat within its duplicate window.
//!
//! Only durable events are published: an event the node could still lose
//! in a crash must not be seen outside it, or the stream would hold an
//! event the log later numbers differently.
//!
//! It runs on a thread of its own, apart from the services: a NATS server
//! that is slow or gone delays the stream, never an order.

use super::wire::{subject, WireEvent};
use crate::config::StreamSettings;
use crate::domain::Seq;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use async_nats::jetstream::{self, message::PublishMessage, stream};
use async_nats::HeaderMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Events read from the log and published before their acknowledgements
/// are awaited: enough to keep the server busy, few enough to redo.
const BATCH: usize = 512;
/// The header that names the store an event comes from.
const STORE_HEADER: &str = "Fulfil-Store";
/// How long to wait before trying again after a failure, doubling up to
/// the second figure.
const RETRY: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(10));

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The server, the connection or a publish failed; tried again.
    #[error("NATS: {0}")]
    Nats(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What is in the stream is not this store's export: going on would
    /// mix two logs, so the exporter stops until an operator decides.
    #[error("{0}")]
    Refused(String),
}

fn nats(e: impl std::fmt::Display) -> ExportError {
    ExportError::Nats(e.to_string())
}

/// The running exporter; stops when dropped.
pub struct Export {
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Export {
    /// Starts publishing `store`'s log as `settings` say.
    pub fn start(settings: StreamSettings, store: Store, metrics: Arc<Metrics>) -> std::io::Result<Export> {
        let (stop, stopped) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("stream-export".into())
            .spawn(move || run(&settings, &store, &metrics, stopped))?;
        Ok(Export { stop, thread: Some(thread) })
    }
}

impl Drop for Export {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Exports until stopped, starting over after each failure.
fn run(settings: &StreamSettings, store: &Store, metrics: &Metrics, mut stopped: watch::Receiver<bool>) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return tracing::error!(error = %e, "cannot start the stream export"),
    };
    runtime.block_on(async {
        let mut wait = RETRY.0;
        loop {
            let result = tokio::select! {
                r = export(settings, store, metrics) => r,
                _ = stopped.wait_for(|s| *s) => return,
            };
            let Err(e) = result else { return };
            metrics.stream_failed();
            if let ExportError::Refused(why) = &e {
                tracing::error!(stream = %settings.name, "the stream export stopped: {why}");
                let _ = stopped.wait_for(|s| *s).await;
                return;
            }
            tracing::warn!(stream = %settings.name, server = %crate::config::host_of(&settings.url), error = %e,
                retry_in_ms = wait.as_millis() as u64, "the stream export failed; it starts over");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
            wait = (wait * 2).min(RETRY.1);
        }
    })
}

/// Connects, finds where the stream stands, and publishes from there on
/// as the log grows. Returns only on a failure.
async fn export(settings: &StreamSettings, store: &Store, metrics: &Metrics) -> Result<(), ExportError> {
    let (_, js) = super::connect(settings).await.map_err(|e| match e {
        super::ConnectError::Settings(why) => ExportError::Refused(why),
        super::ConnectError::Nats(why) => ExportError::Nats(why),
    })?;
    let mut stream = ensured(&js, settings).await?;
    let store_id = store.id()?.unwrap_or_default();
    let mut at = resume(&mut stream, store, &store_id).await?;
    tracing::info!(stream = %settings.name, from = at.event + 1, "publishing the log to the stream");
    let mut head = store.watch_head();
    loop {
        metrics.stream_exported(at.event);
        let events = store.read_log(at.event, BATCH)?;
        if events.is_empty() {
            head.changed().await.map_err(|_| StoreError::Closed)?;
            continue;
        }
        store.durable().await?;
        let mut acks = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let mut headers = HeaderMap::new();
            headers.insert(STORE_HEADER, store_id.as_str());
            let message = PublishMessage::build()
                .payload(WireEvent::of(event).to_bytes().into())
                .headers(headers)
                .message_id(format!("{store_id}-{}", event.seq))
                .expected_last_sequence(at.message + i as u64);
            let to = subject(&settings.subject, event.order_id.as_str(), settings.partitions);
            acks.push((event.seq, js.send_publish(to, message).await.map_err(nats)?));
        }
        for (seq, ack) in acks {
            let ack = ack.await.map_err(nats)?;
            if ack.duplicate || ack.sequence != at.message + 1 {
                return Err(nats(format!(
                    "event {seq} was stored as message {} (duplicate: {}), not after message {}",
                    ack.sequence, ack.duplicate, at.message
                )));
            }
            at = Position { event: seq, message: ack.sequence };
        }
    }
}

/// Where the export stands: the last event published, and the stream
/// message that holds it.
#[derive(Debug, Clone, Copy)]
struct Position {
    event: Seq,
    message: u64,
}

/// The stream, created if missing; an existing one must take the subjects.
async fn ensured(js: &jetstream::Context, s: &StreamSettings) -> Result<stream::Stream, ExportError> {
    let subjects = format!("{}.*", s.subject);
    let config = stream::Config {
        name: s.name.clone(),
        subjects: vec![subjects.clone()],
        num_replicas: s.replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    let mut stream = js.get_or_create_stream(config).await.map_err(nats)?;
    let info = stream.info().await.map_err(nats)?.clone();
    if !info.config.subjects.contains(&subjects) {
        return Err(ExportError::Refused(format!(
            "stream {} exists with subjects {:?}, not {subjects:?}: set [stream] subject to one of them, \
             or name another stream",
            s.name, info.config.subjects
        )));
    }
    if info.config.num_replicas != s.replicas {
        rescale(js, info.config, s.replicas).await;
    }
    Ok(stream)
}

/// Keeps `replicas` copies of a stream made with another number (the
/// setting changed since). JetStream moves the copies itself; a cluster
/// that cannot (too few servers) keeps what it has, and the export goes
/// on, saying so: fewer copies than asked is a risk to report, not a
/// reason to stop publishing.
async fn rescale(js: &jetstream::Context, mut config: stream::Config, replicas: usize) {
    let had = config.num_replicas;
    config.num_replicas = replicas;
    match js.update_stream(&config).await {
        Ok(_) => {
            tracing::info!(stream = %config.name, from = had, to = replicas, "the stream's copies changed")
        }
        Err(e) => tracing::warn!(stream = %config.name, copies = had, asked = replicas, error = %e,
            "stream.replicas asks for another number of copies, and the stream could not change; it keeps its own"),
    }
}

/// The position after the stream's last message, checked to be this
/// store's and within its log.
async fn resume(stream: &mut stream::Stream, store: &Store, store_id: &str) -> Result<Position, ExportError> {
    let name = stream.cached_info().config.name.clone();
    let state = stream.info().await.map_err(nats)?.state.clone();
    if state.messages == 0 {
        return Ok(Position { event: 0, message: state.last_sequence });
    }
    let last = stream.get_raw_message(state.last_sequence).await.map_err(nats)?;
    let from = last.headers.get(STORE_HEADER).map(|v| v.as_str().to_owned()).unwrap_or_default();
    let wire: Option<WireEvent> = serde_json::from_slice(&last.payload).ok();
    let Some(wire) = wire.filter(|_| from == store_id) else {
        return Err(ExportError::Refused(format!(
            "stream {name} holds messages that are not this store's events (its last is from store {from:?}, \
             this is store {store_id:?}): give [stream] name another name"
        )));
    };
    if wire.seq > store.head() {
        return Err(ExportError::Refused(format!(
            "stream {name} holds events up to {}, but this store's log ends at {}: the store was restored \
             from an earlier backup; give [stream] name another name",
            wire.seq,
            store.head()
        )));
    }
    Ok(Position { event: wire.seq, message: state.last_sequence })
}
