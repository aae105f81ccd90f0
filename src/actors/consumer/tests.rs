//! The consumer loop driven by a scripted handler: which events fail, and
//! how, is decided by the test; what was applied is counted in the store, in
//! the same write as the offset, so the counts are exactly what committed.

use super::*;
use crate::actors::testing::{order, paid, placed, temp_store, TestStore};
use crate::domain::PaymentMethod;
use crate::store::{abort, Table};
use std::sync::{Arc, Mutex};

const NAME: &str = "scripted";

/// How an event fails while it is in the script.
#[derive(Clone, Copy)]
enum Fails {
    WithAnError,
    WithAPanic,
    /// With an error the first time only: a passing failure.
    Once,
}

#[derive(Clone, Default)]
struct Script(Arc<Mutex<Vec<(Seq, Fails)>>>);

impl Script {
    fn fail(&self, seq: Seq, how: Fails) {
        self.0.lock().unwrap().push((seq, how));
    }
    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
    fn failure(&self, seq: Seq) -> Option<Fails> {
        let mut script = self.0.lock().unwrap();
        let at = script.iter().position(|(s, _)| *s == seq)?;
        match script[at].1 {
            Fails::Once => {
                script.remove(at);
                Some(Fails::WithAnError)
            }
            how => Some(how),
        }
    }
}

/// Times each event was applied, by sequence number.
const APPLIED: Table<u32> = Table::new("applied");

struct Scripted {
    cursor: Cursor,
    script: Script,
}

impl Scripted {
    fn start(t: &TestStore, script: &Script) -> Addr<Scripted> {
        let env = t.env();
        let actor = Scripted { cursor: Cursor::load(&env, NAME).unwrap(), script: script.clone() };
        actix::Supervisor::start(move |_| actor)
    }
}

crate::log_consumer!(Scripted);

impl LogConsumer for Scripted {
    fn cursor(&mut self) -> &mut Cursor {
        &mut self.cursor
    }

    fn apply_batch(&mut self, batch: &[Event], delivery: Delivery) -> Result<(), NodeError> {
        let script = self.script.clone();
        self.cursor.apply(batch, delivery, |tx, event| {
            match script.failure(event.seq) {
                Some(Fails::WithAPanic) => panic!("scripted panic at {}", event.seq),
                Some(Fails::WithAnError | Fails::Once) => {
                    return abort(crate::error::Refused::Invalid(format!("scripted at {}", event.seq)).into())
                }
                None => {}
            }
            let times = tx.get(APPLIED, event.seq.to_be_bytes())?.unwrap_or(0);
            tx.put(APPLIED, event.seq.to_be_bytes(), &(times + 1))
        })?;
        Ok(())
    }
}

/// How many times each event of the log was applied, by sequence.
fn applied(t: &TestStore) -> Vec<u32> {
    (1..=t.store.head()).map(|seq| t.store.get(APPLIED, seq.to_be_bytes()).unwrap().unwrap_or(0)).collect()
}

fn five_events(t: &TestStore) {
    for n in 1..=5 {
        t.append(&order(n), vec![placed("kim", &[], PaymentMethod::Card)]);
    }
}

async fn poison_is_set_aside_and_the_rest_applies_once(how: Fails) -> TestStore {
    let t = temp_store();
    let script = Script::default();
    script.fail(3, how);
    five_events(&t);
    let _consumer = Scripted::start(&t, &script);
    t.caught_up(NAME).await;

    assert_eq!(applied(&t), [1, 1, 0, 1, 1], "the batch is narrowed down to the one failing event");
    let poison_after = t.env().policy.poison_after;
    let letters = retried_to_the_end(&t, poison_after).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!((letter.seq, letter.service.as_str(), letter.attempts), (3, NAME, poison_after));
    assert_eq!(letter.order_id, order(3));
    assert_eq!(t.store.offset(NAME).unwrap(), 5, "the offset moved past the poison event");
    t
}

/// The dead letters once the failing event has been retried by itself,
/// with backoff, `poison_after` times in all.
async fn retried_to_the_end(t: &TestStore, poison_after: u32) -> Vec<crate::store::DeadLetter> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let letters = t.store.dead_letters().unwrap();
        if letters.iter().all(|l| l.attempts >= poison_after) && !letters.is_empty() {
            return letters;
        }
        assert!(std::time::Instant::now() < deadline, "not retried to the end: {letters:?}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[actix::test]
async fn a_batch_with_an_event_that_errs_is_bisected_and_the_event_set_aside() {
    poison_is_set_aside_and_the_rest_applies_once(Fails::WithAnError).await;
}

/// A panic that belongs to one order's event is that order's: the service
/// does not restart and stays ready while the event is retried by itself.
#[actix::test]
async fn an_event_that_panics_is_set_aside_for_its_order_without_a_restart() {
    let t = poison_is_set_aside_and_the_rest_applies_once(Fails::WithAPanic).await;
    let health = &t.health.snapshot(t.store.head())[NAME];
    assert_eq!(health.restarts, 0, "{health:?}");
    assert_eq!(health.state, crate::health::ServiceState::Running);
}

/// A set-aside event that succeeds when retried by itself (a passing
/// failure) goes through on its own, with the order's later events after
/// it, in order; nobody has to step in.
#[actix::test]
async fn an_event_that_fails_once_goes_through_on_its_automatic_retry_with_its_order_in_order() {
    let t = temp_store();
    let script = Script::default();
    script.fail(2, Fails::Once);
    t.append(&order(1), vec![placed("kim", &[], PaymentMethod::Card)]);
    t.append(&order(2), vec![placed("lee", &[], PaymentMethod::Card)]);
    t.append(&order(2), vec![paid(100)]);
    t.append(&order(3), vec![placed("seo", &[], PaymentMethod::Card)]);
    let _consumer = Scripted::start(&t, &script);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while applied(&t) != [1, 1, 1, 1] {
        assert!(std::time::Instant::now() < deadline, "{:?}", applied(&t));
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(t.store.dead_letters().unwrap().is_empty());
}

#[actix::test]
async fn a_redelivered_dead_letter_applies_once_and_a_restart_applies_nothing_twice() {
    let t = temp_store();
    let script = Script::default();
    script.fail(2, Fails::WithAnError);
    five_events(&t);
    let first = Scripted::start(&t, &script);
    t.caught_up(NAME).await;
    let letter = t.store.dead_letters().unwrap().remove(0);

    // Still failing: the redelivery is refused and the letter stays.
    assert!(first.send(Redeliver(letter.clone())).await.unwrap().is_err());
    assert_eq!(t.store.dead_letters().unwrap().len(), 1);

    script.clear();
    first.send(Redeliver(letter.clone())).await.unwrap().unwrap();
    assert_eq!(applied(&t), [1, 1, 1, 1, 1]);
    assert!(t.store.dead_letters().unwrap().is_empty(), "the letter is gone with the redelivery");

    // A second instance (a restart) starts from the committed offset,
    // and a repeated redelivery of the removed letter finds nothing new.
    let second = Scripted::start(&t, &script);
    t.append(&order(6), vec![placed("kim", &[], PaymentMethod::Card)]);
    t.caught_up(NAME).await;
    let _ = second.send(Ping).await;
    assert_eq!(applied(&t), [1, 1, 1, 1, 1, 1], "each event applied exactly once");
}

#[actix::test]
async fn a_paused_consumer_applies_nothing_and_catches_up_on_resume() {
    let t = temp_store();
    let script = Script::default();
    let consumer = Scripted::start(&t, &script);
    consumer.send(Pause).await.unwrap();
    five_events(&t);
    // Answered after the pause and the appends: it had its chance.
    consumer.send(Ping).await.unwrap();
    assert_eq!(applied(&t), [0, 0, 0, 0, 0]);
    consumer.send(Resume).await.unwrap();
    t.caught_up(NAME).await;
    assert_eq!(applied(&t), [1, 1, 1, 1, 1]);
}

/// A command that catches up on the log first.
#[derive(Message)]
#[rtype(result = "Result<(), NodeError>")]
struct CatchUp;

impl Handler<CatchUp> for Scripted {
    type Result = Result<(), NodeError>;

    fn handle(&mut self, _: CatchUp, ctx: &mut Context<Self>) -> Self::Result {
        let caught_up = catch_up(self);
        schedule_pending(self, ctx);
        caught_up
    }
}

/// A command about another order, catching up past an order's failing
/// event, is not held up by it: the event is set aside for its order.
#[actix::test]
async fn a_command_catching_up_past_one_orders_failing_event_goes_on() {
    let t = temp_store();
    let script = Script::default();
    script.fail(2, Fails::WithAPanic);
    let consumer = Scripted::start(&t, &script);
    t.caught_up(NAME).await;
    five_events(&t);
    consumer.send(CatchUp).await.unwrap().expect("the command is not refused for order 2's failure");
    assert_eq!(applied(&t), [1, 0, 1, 1, 1]);
    let letters = retried_to_the_end(&t, t.env().policy.poison_after).await;
    assert_eq!(letters.iter().map(|l| l.seq).collect::<Vec<_>>(), [2], "retried, and set aside once");
}
