//! Pull-based consumption of the event log, shared by every actor.
//!
//! A consumer reads a batch after its committed offset, applies it in one
//! transaction that also commits the new offset, and asks for the next batch
//! through its own context, so commands in its mailbox are served between
//! batches. When it has caught up it waits on the log's head. It pulls at its
//! own pace: a slow consumer lags in the log instead of filling memory, and a
//! stopped one resumes from its offset.
//!
//! Failures ([`super::supervision`]) are kept to the order they belong to.
//! A batch that panics or fails is retried one event at a time to find the
//! culprit, without a restart. An event that fails on its own is set aside
//! at once for its order (its later events wait behind it, in order) and the
//! consumer goes on with every other order's; the set-aside event is retried
//! for that order alone with backoff, and after `poison_after` attempts in
//! all it stays a dead letter for an operator. Only a failure that is not
//! one order's (the store fails, an injected fault of the whole service)
//! holds the service up: retried after a pause, and after a panic the actor
//! restarts with backoff.

use super::supervision::{catch, Supervise, Supervision};
use super::write_behind::WriteBehind;
use super::ServiceEnv;
use crate::domain::{Event, OrderId, Seq};
use crate::error::{CallError, NodeError, Refused};
use crate::health::ServiceState;
use crate::logging::ERRORS;
use crate::store::{park, remove_dead_letter, unpark, DeadLetter, Store, StoreError, Tx, TxResult};
use actix::prelude::*;
use std::collections::HashSet;
use std::time::Duration;

mod failures;

use failures::{order_failed, resume_retries, service_failed};
pub use failures::{redeliver, retry_letter, schedule_pending};

/// Events applied in one transaction at most.
pub const BATCH: usize = 256;
/// Pause before trying again while the store takes no writes.
const STORE_DOWN_WAIT: Duration = Duration::from_millis(500);
/// Pause before retrying a batch that failed without a panic.
const RETRY_AFTER: Duration = Duration::from_millis(100);
/// Woken with fewer than this many events waiting, a consumer lingers for
/// [`LINGER`] so that more arrive and are applied in one transaction: under
/// load this turns thousands of tiny transactions and thread wake-ups a
/// second into a few large ones, at the cost of a millisecond per hop.
const LINGER_BELOW: u64 = 32;
const LINGER: Duration = Duration::from_millis(1);

/// Where a consumer stands in the log, and its supervision.
pub struct Cursor {
    pub store: Store,
    pub name: &'static str,
    pub sup: Supervision,
    offset: Seq,
    paused: bool,
    waiting: bool,
    /// After a failed batch: one event at a time, to find the culprit.
    single: bool,
    /// Orders with a dead letter here: their later events are parked behind
    /// it, in order, instead of applied out of order without it.
    quarantined: HashSet<OrderId>,
    /// The store's generation this cursor's offset was read in: after the
    /// store is reopened, what was not flushed is gone and the offset is
    /// read again.
    generation: u64,
    /// Events set aside while catching up for a command, whose retries are
    /// still to be scheduled (a command handler has no timer of its own).
    unscheduled: Vec<DeadLetter>,
}

/// How a batch reaches a consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// In log order: events at or below the committed offset are skipped and
    /// the offset moves to the batch's end.
    InOrder,
    /// A dead letter put back by an operator: applied whatever the offset,
    /// which does not move; the dead letter is removed in the same
    /// transaction.
    Redelivery,
}

impl Cursor {
    pub fn load(env: &ServiceEnv, name: &'static str) -> Result<Cursor, NodeError> {
        let offset = env.store.offset(name)?;
        env.health.progressed(name, offset);
        Ok(Cursor {
            store: env.store.clone(),
            name,
            sup: env.supervision(name),
            offset,
            paused: false,
            waiting: false,
            single: false,
            quarantined: quarantined(&env.store, name)?,
            generation: env.store.condition().generation(),
            unscheduled: Vec::new(),
        })
    }

    /// Refuses a command about an order whose events wait behind a dead
    /// letter here: decided on a state that lacks them, it could be wrong.
    pub fn not_quarantined(&self, order: &OrderId) -> Result<(), NodeError> {
        match self.quarantined.contains(order) {
            false => Ok(()),
            true => Err(Refused::NeedsAttention(format!(
                "order {order} waits for an operator: an event of it failed in {} (see /admin/dead-letters)",
                self.name
            ))
            .into()),
        }
    }

    pub fn offset(&self) -> Seq {
        self.offset
    }

    /// Whether an event of `batch` belongs to an order with a dead letter
    /// here (its events are parked, not applied).
    pub fn any_quarantined(&self, batch: &[Event]) -> bool {
        !self.quarantined.is_empty() && batch.iter().any(|e| self.quarantined.contains(&e.order_id))
    }

    /// Re-reads the committed offset, e.g. after a restart.
    pub fn reload(&mut self) -> Result<(), NodeError> {
        self.generation = self.store.condition().generation();
        self.offset = self.store.offset(self.name)?;
        self.quarantined = quarantined(&self.store, self.name)?;
        self.waiting = false;
        Ok(())
    }

    /// Applies `batch` with `f` in one write.
    ///
    /// In order, events at or below the offset committed in the store are
    /// skipped, read in the same transaction: even two instances of one
    /// consumer apply each event once. Returns the events `f` appended.
    pub fn apply(
        &self,
        batch: &[Event],
        delivery: Delivery,
        f: impl Fn(&mut Tx<'_>, &Event) -> TxResult<(), NodeError>,
    ) -> Result<Vec<Event>, NodeError> {
        let Some(last) = batch.last() else { return Ok(Vec::new()) };
        let (letters, released) = match delivery {
            Delivery::InOrder => (Vec::new(), Vec::new()),
            Delivery::Redelivery => {
                let letters = self.letters_for(batch)?;
                let released = self.released_by(&letters)?;
                (letters, released)
            }
        };
        let (_, appended) = self.store.write(|tx| match delivery {
            Delivery::InOrder => {
                let committed = tx.offset(self.name)?;
                for event in batch.iter().filter(|e| e.seq > committed) {
                    if self.quarantined.contains(&event.order_id) {
                        park(tx, self.name, event)?;
                        continue;
                    }
                    let _span = event_span(self.name, event).entered();
                    f(tx, event)?;
                }
                tx.commit_offset(self.name, last.seq.max(committed))
            }
            Delivery::Redelivery => {
                // The dead letter's event, then what waited behind it, in order.
                for event in batch.iter().chain(&released) {
                    let _span = event_span(self.name, event).entered();
                    f(tx, event)?;
                }
                released.iter().try_for_each(|e| unpark(tx, self.name, e))?;
                letters.iter().try_for_each(|l| remove_dead_letter(tx, l))
            }
        })?;
        Ok(appended)
    }

    /// The parked events that follow once `letters` are redelivered: all of
    /// their order's, when no other dead letter of it is left here.
    fn released_by(&self, letters: &[DeadLetter]) -> Result<Vec<Event>, NodeError> {
        let Some(order) = letters.first().map(|l| &l.order_id) else { return Ok(Vec::new()) };
        let others = self.store.dead_letters_of(order)?;
        let left = others.iter().filter(|o| o.service == self.name && !letters.iter().any(|l| l.id == o.id));
        if left.count() > 0 {
            return Ok(Vec::new());
        }
        Ok(self.store.parked(self.name, order)?)
    }

    /// This consumer's dead letters for the events of `batch`.
    fn letters_for(&self, batch: &[Event]) -> Result<Vec<DeadLetter>, NodeError> {
        let mut letters = Vec::new();
        for event in batch {
            let of_order = self.store.dead_letters_of(&event.order_id)?;
            letters.extend(of_order.into_iter().filter(|l| l.seq == event.seq && l.service == self.name));
        }
        Ok(letters)
    }
}

/// The span of one event applied by one service. At debug level: every
/// service applies every event, so an enabled span per event would cost on
/// the hot path; `RUST_LOG=fulfil=debug` follows an order through them.
pub(crate) fn event_span(service: &'static str, event: &Event) -> tracing::Span {
    tracing::debug_span!("apply", service, seq = event.seq, order = %event.order_id, event = event.kind.name())
}

/// The orders with a dead letter of `service`.
fn quarantined(store: &Store, service: &str) -> Result<HashSet<OrderId>, NodeError> {
    let letters = store.dead_letters()?;
    Ok(letters.into_iter().filter(|l| l.service == service).map(|l| l.order_id).collect())
}

/// An actor that consumes the log.
pub trait LogConsumer: Actor<Context = Context<Self>> + Handler<Pump> + Handler<RetryLetter> {
    fn cursor(&mut self) -> &mut Cursor;

    /// Applies a batch (see [`Cursor::apply`]).
    fn apply_batch(&mut self, batch: &[Event], delivery: Delivery) -> Result<(), NodeError>;

    /// Drops what only the failed instance knew; called on a restart.
    fn on_restart(&mut self) {}

    /// What the consumer writes behind, if it does: the framework commits
    /// it on a timer, before it writes the offset itself and when asked
    /// ([`CommitHeldBack`]), and forgets it on a restart.
    fn behind(&mut self) -> Option<&mut WriteBehind> {
        None
    }

    /// Commits what the consumer holds back before the consumer framework
    /// writes its offset itself (an event set aside moves it past that
    /// event): nothing held back may be skipped.
    fn commit_held_back(&mut self) -> Result<(), NodeError> {
        self.behind().map_or(Ok(()), WriteBehind::commit_now)
    }

    /// Starts what else the actor runs (timers); called whenever it starts,
    /// restarts included.
    fn on_start(&mut self, _ctx: &mut Context<Self>) {}
}

impl<A: LogConsumer> Supervise for A {
    fn supervision(&mut self) -> &mut Supervision {
        &mut self.cursor().sup
    }
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

/// Answered at once by a live actor; `/health/live` sends it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ping;

/// Puts a dead letter back: the consumer applies its event again.
#[derive(Message)]
#[rtype(result = "Result<(), NodeError>")]
pub struct Redeliver(pub DeadLetter);

/// Commits what the consumer holds back (see
/// [`LogConsumer::commit_held_back`]): sent by the node before it stops, so
/// that what is stored is whole and the next start has nothing to fold
/// again.
#[derive(Message)]
#[rtype(result = "Result<(), NodeError>")]
pub struct CommitHeldBack;

/// Tries a set-aside event again by itself (for its order alone), while it
/// has attempts left.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RetryLetter(pub u64);

/// What one turn of the loop did.
enum Step {
    Idle,
    Applied,
    /// The store takes no writes now: nothing is wrong with the events.
    StoreDown(String),
    Failed {
        batch: Vec<Event>,
        error: String,
        panicked: bool,
        /// Whether it is the whole service's failure (the store, an injected
        /// fault of the service), not one order's.
        service_wide: bool,
    },
}

/// Reads the next batch and applies it, catching a panic.
fn step<A: LogConsumer>(act: &mut A) -> Result<Step, NodeError> {
    let cursor = act.cursor();
    if cursor.generation != cursor.store.condition().generation() {
        cursor.reload()?;
    }
    let limit = if cursor.single { 1 } else { BATCH };
    let batch = cursor.store.read_log(cursor.offset, limit)?;
    let Some(last) = batch.last().map(|e| e.seq) else { return Ok(Step::Idle) };
    // Injected faults run here, outside the transaction (sled holds its
    // global write lock while a transaction closure runs): the service's
    // own once per batch, then the poison-order check for every event. A
    // parked event is not handled, so no injected fault fires for it.
    let whole = catch(|| act.cursor().sup.inject(None));
    let service_fault = match whole {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some((e.to_string(), false)),
        Err(why) => Some((format!("panic: {why}"), true)),
    };
    if let Some((error, panicked)) = service_fault {
        return Ok(Step::Failed { batch, error, panicked, service_wide: true });
    }
    let outcome = catch(|| {
        let cursor = act.cursor();
        let handled = |e: &&Event| !cursor.quarantined.contains(&e.order_id);
        let sup = &cursor.sup;
        for event in batch.iter().filter(handled) {
            sup.faults().poison_check(sup.name, &event.order_id);
        }
        act.apply_batch(&batch, Delivery::InOrder)
    });
    let (error, panicked, service_wide) = match outcome {
        Ok(Ok(())) => {
            let cursor = act.cursor();
            cursor.offset = last;
            cursor.single = false;
            cursor.sup.event_succeeded();
            cursor.sup.recovered();
            cursor.sup.health().progressed(cursor.name, last);
            cursor.sup.metrics().events_consumed.with_label_values(&[cursor.name]).inc_by(batch.len() as u64);
            return Ok(Step::Applied);
        }
        Ok(Err(NodeError::Store(StoreError::Unavailable(why)))) => return Ok(Step::StoreDown(why)),
        Ok(Err(e @ NodeError::Store(_))) => (e.to_string(), false, true),
        Ok(Err(e)) => (e.to_string(), false, false),
        Err(why) => (format!("panic: {why}"), true, false),
    };
    Ok(Step::Failed { batch, error, panicked, service_wide })
}

/// Applies everything in the log now. Commands call this first, so that they
/// are decided on every fact recorded before they arrived.
pub fn catch_up<A: LogConsumer>(act: &mut A) -> Result<(), NodeError> {
    if act.cursor().paused {
        return Ok(());
    }
    loop {
        match step(act)? {
            Step::Idle => return Ok(()),
            Step::Applied => {}
            Step::StoreDown(why) => return Err(NodeError::Store(StoreError::Unavailable(why))),
            // One order's failure is that order's: set aside (its retry is
            // scheduled by `schedule_pending`), and the others go on.
            Step::Failed { batch, error, service_wide: false, .. } => {
                failures::set_aside_now(act, &batch, &error)
            }
            Step::Failed { error, .. } => {
                // The loop (`pump`) deals with the failure; the command can
                // not be decided on a log it cannot read past.
                let name = act.cursor().name;
                act.cursor().sup.health().failed(name, error.clone());
                return Err(NodeError::Call(CallError::Failed { service: name, reason: error }));
            }
        }
    }
}

/// One turn of the consuming loop; see the module docs.
pub fn pump<A: LogConsumer>(act: &mut A, ctx: &mut Context<A>) {
    schedule_pending(act, ctx);
    let cursor = act.cursor();
    if cursor.paused {
        return;
    }
    if let Some(wait) = cursor.sup.backing_off() {
        ctx.notify_later(Pump, wait);
        return;
    }
    match step(act) {
        Ok(Step::Idle) => {
            act.cursor().sup.recovered();
            wait_for_more(act, ctx);
        }
        Ok(Step::Applied) => ctx.notify(Pump),
        // It heals by itself; the events will be applied then.
        Ok(Step::StoreDown(_)) => {
            ctx.notify_later(Pump, STORE_DOWN_WAIT);
        }
        Ok(Step::Failed { batch, error, panicked, service_wide: true }) => {
            service_failed(act, ctx, &batch, error, panicked)
        }
        Ok(Step::Failed { batch, error, .. }) => order_failed(act, ctx, &batch, error),
        Err(e) => {
            let cursor = act.cursor();
            if let Some(held_back) = ERRORS.allow(cursor.name) {
                tracing::error!(service = cursor.name, error = %e, held_back, "reading the log failed; retrying");
            }
            cursor.sup.health().failed(cursor.name, e.to_string());
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
    let wait = async move {
        let grew = match head.wait_for(|h| *h > offset).await {
            Ok(h) => Some(*h),
            Err(_) => None,
        };
        if grew.is_some_and(|h| h - offset < LINGER_BELOW) {
            tokio::time::sleep(LINGER).await;
        }
        grew.is_some()
    };
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
    cursor.sup.health().set_state(cursor.name, ServiceState::Paused);
}

pub fn resume<A: LogConsumer>(act: &mut A, ctx: &mut Context<A>) {
    let cursor = act.cursor();
    cursor.paused = false;
    cursor.sup.health().set_state(cursor.name, ServiceState::Running);
    pump(act, ctx);
}

/// Starts the loop; call from `started`. After a restart the service stays
/// `restarting` (or `failed`) until its first successful turn.
pub fn start<A: LogConsumer>(act: &mut A, ctx: &mut Context<A>) {
    act.on_start(ctx);
    if let Some(every) = act.behind().map(|b| b.tick_every()) {
        ctx.run_interval(every, |act, _| act.behind().into_iter().for_each(WriteBehind::tick));
    }
    resume_retries(act, ctx);
    let cursor = act.cursor();
    if cursor.sup.backing_off().is_none() {
        cursor.sup.health().set_state(cursor.name, ServiceState::Running);
    }
    ctx.notify(Pump);
}

/// Reloads state from the store and applies the restart policy; call from
/// `restarting`.
pub fn restart<A: LogConsumer>(act: &mut A) {
    act.on_restart();
    // Folded again from the committed offset.
    act.behind().into_iter().for_each(WriteBehind::forget);
    let cursor = act.cursor();
    cursor.single = true;
    if let Err(e) = cursor.reload() {
        cursor.sup.health().failed(cursor.name, e.to_string());
    }
    cursor.sup.restarted();
}

/// Implements `Actor`, `Supervised` and the `Pump`, `Pause`, `Resume`,
/// `Ping`, `RetryLetter`, `CommitHeldBack` and `Redeliver` handlers for a
/// [`LogConsumer`].
#[macro_export]
macro_rules! log_consumer {
    ($actor:ty) => {
        impl actix::Actor for $actor {
            type Context = actix::Context<Self>;

            fn started(&mut self, ctx: &mut Self::Context) {
                $crate::actors::consumer::start(self, ctx);
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

        impl actix::Handler<$crate::actors::consumer::Ping> for $actor {
            type Result = ();
            fn handle(&mut self, _: $crate::actors::consumer::Ping, _: &mut Self::Context) {}
        }

        impl actix::Handler<$crate::actors::consumer::RetryLetter> for $actor {
            type Result = ();
            fn handle(&mut self, msg: $crate::actors::consumer::RetryLetter, ctx: &mut Self::Context) {
                $crate::actors::consumer::retry_letter(self, ctx, msg.0);
            }
        }

        impl actix::Handler<$crate::actors::consumer::CommitHeldBack> for $actor {
            type Result = Result<(), $crate::error::NodeError>;
            fn handle(
                &mut self,
                _: $crate::actors::consumer::CommitHeldBack,
                ctx: &mut Self::Context,
            ) -> Self::Result {
                $crate::actors::supervision::guarded(self, ctx, None, |act| {
                    $crate::actors::consumer::LogConsumer::commit_held_back(act)
                })
            }
        }

        impl actix::Handler<$crate::actors::consumer::Redeliver> for $actor {
            type Result = Result<(), $crate::error::NodeError>;
            fn handle(
                &mut self,
                msg: $crate::actors::consumer::Redeliver,
                ctx: &mut Self::Context,
            ) -> Self::Result {
                $crate::actors::consumer::redeliver(self, ctx, msg.0)
            }
        }
    };
}

#[cfg(test)]
mod tests;
