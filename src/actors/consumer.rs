//! Pull-based consumption of the event log, shared by every actor.
//!
//! A consumer reads a batch after its committed offset, applies it in one
//! transaction that also commits the new offset, and asks for the next batch
//! through its own context, so commands in its mailbox are served between
//! batches. When it has caught up it waits on the log's head. It pulls at its
//! own pace: a slow consumer lags in the log instead of filling memory, and a
//! stopped one resumes from its offset.

use super::health::{Health, ServiceState};
use super::NodeError;
use crate::domain::{Event, Seq};
use crate::store::{Store, Tx, TxResult};
use actix::prelude::*;
use sled::Tree;
use std::time::Duration;

/// Events applied in one transaction at most.
pub const BATCH: usize = 256;
/// Pause before retrying a batch that failed.
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// Where a consumer stands in the log.
pub struct Cursor {
    pub store: Store,
    pub name: &'static str,
    pub health: Health,
    offset: Seq,
    paused: bool,
    waiting: bool,
}

impl Cursor {
    pub fn load(store: Store, name: &'static str, health: Health) -> Result<Cursor, NodeError> {
        let offset = store.offset(name)?;
        health.progressed(name, offset);
        Ok(Cursor { store, name, health, offset, paused: false, waiting: false })
    }

    pub fn offset(&self) -> Seq {
        self.offset
    }

    /// Re-reads the committed offset, e.g. after a restart.
    pub fn reload(&mut self) -> Result<(), NodeError> {
        self.offset = self.store.offset(self.name)?;
        self.waiting = false;
        Ok(())
    }

    /// Applies `batch` with `f` in one transaction over `trees`, committing
    /// the offset with it. Returns the events `f` appended.
    ///
    /// Events at or below the offset committed in the store are skipped, read
    /// in the same transaction: even two instances of one consumer (a
    /// restarted one and its predecessor's late batch) apply each event once.
    pub fn apply(
        &self,
        trees: &[&Tree],
        batch: &[Event],
        f: impl Fn(&mut Tx<'_>, &Event) -> TxResult<(), NodeError>,
    ) -> Result<Vec<Event>, NodeError> {
        let Some(last) = batch.last() else {
            return Ok(Vec::new());
        };
        let (_, appended) = self.store.write(trees, |tx| {
            let committed = tx.offset(self.name)?;
            for event in batch.iter().filter(|e| e.seq > committed) {
                f(tx, event)?;
            }
            tx.commit_offset(self.name, last.seq.max(committed))
        })?;
        Ok(appended)
    }
}

/// An actor that consumes the log.
pub trait LogConsumer: Actor<Context = Context<Self>> + Handler<Pump> {
    fn cursor(&mut self) -> &mut Cursor;

    /// Applies a batch (see [`Cursor::apply`]).
    fn apply_batch(&mut self, batch: &[Event]) -> Result<(), NodeError>;

    /// Drops what only the failed instance knew; called on a restart.
    fn on_restart(&mut self) {}
}

/// Asks a consumer to process the next batch.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Pump;

/// Stops consuming until [`Resume`]; commands are still answered.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Pause;

/// Resumes consuming from the committed offset.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resume;

/// Reads and applies the next batch; returns how many events it applied.
fn step<A: LogConsumer>(act: &mut A) -> Result<usize, NodeError> {
    let cursor = act.cursor();
    if cursor.paused {
        return Ok(0);
    }
    let batch = cursor.store.read_log(cursor.offset, BATCH)?;
    let Some(last) = batch.last().map(|e| e.seq) else {
        return Ok(0);
    };
    act.apply_batch(&batch)?;
    let cursor = act.cursor();
    cursor.offset = last;
    cursor.health.progressed(cursor.name, last);
    Ok(batch.len())
}

/// Applies everything in the log now. Commands call this first, so that they
/// are decided on every fact recorded before they arrived.
pub fn catch_up<A: LogConsumer>(act: &mut A) -> Result<(), NodeError> {
    while step(act)? > 0 {}
    Ok(())
}

/// One turn of the consuming loop; see the module docs.
pub fn pump<A: LogConsumer>(act: &mut A, ctx: &mut Context<A>) {
    match step(act) {
        Ok(0) => wait_for_more(act, ctx),
        Ok(_) => ctx.notify(Pump),
        Err(e) => {
            let cursor = act.cursor();
            tracing::error!(service = cursor.name, error = %e, "processing the log failed; retrying");
            cursor.health.failed(cursor.name, e.to_string());
            ctx.notify_later(Pump, RETRY_AFTER);
        }
    }
}

/// Wakes the consumer when the log grows past its offset. At most one waiter
/// is pending per consumer.
fn wait_for_more<A: LogConsumer>(act: &mut A, ctx: &mut Context<A>) {
    let cursor = act.cursor();
    if cursor.paused || cursor.waiting {
        return;
    }
    cursor.waiting = true;
    let offset = cursor.offset;
    let mut head = cursor.store.watch_head();
    let wait = async move { head.wait_for(|h| *h > offset).await.is_ok() };
    ctx.spawn(wait.into_actor(act).map(|grew, act, ctx| {
        act.cursor().waiting = false;
        // The log only stops growing for good when the store shuts down.
        if grew {
            pump(act, ctx);
        }
    }));
}

pub fn pause<A: LogConsumer>(act: &mut A) {
    let cursor = act.cursor();
    cursor.paused = true;
    cursor.health.set_state(cursor.name, ServiceState::Paused);
}

pub fn resume<A: LogConsumer>(act: &mut A, ctx: &mut Context<A>) {
    let cursor = act.cursor();
    cursor.paused = false;
    cursor.health.set_state(cursor.name, ServiceState::Running);
    pump(act, ctx);
}

/// Marks the consumer running and starts its loop; call from `started`.
pub fn start<A: LogConsumer>(act: &mut A, ctx: &mut Context<A>) {
    let cursor = act.cursor();
    cursor.health.set_state(cursor.name, ServiceState::Running);
    ctx.notify(Pump);
}

/// Reloads the offset and counts the restart; call from `restarting`.
pub fn restart<A: LogConsumer>(act: &mut A) {
    act.on_restart();
    let cursor = act.cursor();
    cursor.health.restarted(cursor.name);
    if let Err(e) = cursor.reload() {
        cursor.health.failed(cursor.name, e.to_string());
    }
}

/// Implements the `Pump`, `Pause` and `Resume` handlers, `Actor` and
/// `Supervised` for a [`LogConsumer`], with the given mailbox capacity field.
#[macro_export]
macro_rules! log_consumer {
    ($actor:ty) => {
        impl actix::Actor for $actor {
            type Context = actix::Context<Self>;

            fn started(&mut self, ctx: &mut Self::Context) {
                $crate::actors::consumer::start(self, ctx);
            }

            fn stopped(&mut self, _: &mut Self::Context) {
                let cursor = $crate::actors::consumer::LogConsumer::cursor(self);
                cursor.health.set_state(cursor.name, $crate::actors::health::ServiceState::Stopped);
            }
        }

        impl actix::Supervised for $actor {
            fn restarting(&mut self, _: &mut Self::Context) {
                $crate::actors::consumer::restart(self);
            }
        }

        impl actix::Handler<$crate::actors::consumer::Pump> for $actor {
            type Result = ();
            fn handle(&mut self, _: $crate::actors::consumer::Pump, ctx: &mut Self::Context) {
                $crate::actors::consumer::pump(self, ctx);
            }
        }

        impl actix::Handler<$crate::actors::consumer::Pause> for $actor {
            type Result = ();
            fn handle(&mut self, _: $crate::actors::consumer::Pause, _: &mut Self::Context) {
                $crate::actors::consumer::pause(self);
            }
        }

        impl actix::Handler<$crate::actors::consumer::Resume> for $actor {
            type Result = ();
            fn handle(&mut self, _: $crate::actors::consumer::Resume, ctx: &mut Self::Context) {
                $crate::actors::consumer::resume(self, ctx);
            }
        }
    };
}
