//! Seed 004, taxi dispatch, as the `taxi` workflow.

use super::{list, place, told};
use crate::helpers::{assert_problem, history, spawn_app, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn taxi_call(passenger: &str) -> Value {
    json!({"workflow": "taxi", "customer": passenger, "address": "Seoul station, west exit", "payment": "none"})
}

async fn accept(app: &TestApp, id: &str, driver: &str) -> reqwest::Response {
    app.post_json(&format!("/orders/{id}/accept"), &json!({"by": driver})).await
}

#[tokio::test]
async fn a_passenger_calls_a_taxi_and_the_call_joins_the_open_calls() {
    let app = spawn_app().await;
    let id = place(&app, taxi_call("yoon")).await;
    let view = app.wait_for_status(&id, "placed").await;
    assert_eq!(view["label"], "open");
    assert_eq!(list(&app, "taxi", "placed").await, [id]);
}

#[tokio::test]
async fn two_drivers_accept_the_same_call_at_once_and_exactly_one_wins() {
    let app = spawn_app().await;
    for round in 0..10 {
        let id = place(&app, taxi_call(&format!("p{round}"))).await;
        // Fresh drivers each round: a driver holds one ride at a time.
        let (first, second) = (format!("driver-a{round}"), format!("driver-b{round}"));
        let (a, b) = tokio::join!(accept(&app, &id, &first), accept(&app, &id, &second));
        let (won, lost) = match (a.status(), b.status()) {
            (StatusCode::OK, StatusCode::CONFLICT) => (a, b),
            (StatusCode::CONFLICT, StatusCode::OK) => (b, a),
            other => panic!("one must win and one lose: {other:?}"),
        };
        let winner = won.json::<Value>().await.unwrap()["accepted_by"].as_str().unwrap().to_owned();
        let problem = assert_problem(lost, StatusCode::CONFLICT).await;
        assert_eq!(problem["type"], "/problems/already-taken");
        assert!(problem["detail"].as_str().unwrap().contains("this call is already dispatched"), "{problem}");
        let view = app.wait_for_status(&id, "accepted").await;
        assert_eq!(view["accepted_by"], winner.as_str());
    }
}

#[tokio::test]
async fn the_passengers_status_shows_dispatched_and_the_driver() {
    let app = spawn_app().await;
    let id = place(&app, taxi_call("yoon")).await;
    assert_eq!(accept(&app, &id, "driver-park").await.status(), StatusCode::OK);
    let view = app.wait_for_status(&id, "accepted").await;
    assert_eq!(
        (view["label"].as_str(), view["accepted_by"].as_str()),
        (Some("dispatched"), Some("driver-park"))
    );
    assert!(list(&app, "taxi", "placed").await.is_empty(), "no longer an open call");
    assert_eq!(list(&app, "taxi", "accepted").await, [id]);
}

#[tokio::test]
async fn a_driver_accepting_a_dispatched_call_is_told_it_is_already_dispatched() {
    let app = spawn_app().await;
    let id = place(&app, taxi_call("yoon")).await;
    accept(&app, &id, "driver-park").await;
    let problem = assert_problem(accept(&app, &id, "driver-jung").await, StatusCode::CONFLICT).await;
    assert!(problem["detail"].as_str().unwrap().contains("this call is already dispatched"));
}

#[tokio::test]
async fn the_passenger_is_told_of_every_status_change() {
    let app = spawn_app().await;
    let id = place(&app, taxi_call("yoon")).await;
    accept(&app, &id, "driver-park").await;
    app.wait_for_status(&id, "accepted").await;
    assert_eq!(told(&app, "yoon").await, ["placed", "accepted"]);
}

#[tokio::test]
/// SCENARIOS.md, 004: the passenger "cancels until the ride starts".
async fn an_open_call_can_be_cancelled_and_so_can_a_dispatched_one_until_the_ride_starts() {
    let app = spawn_app().await;
    let open = place(&app, taxi_call("yoon")).await;
    assert_eq!(app.post(&format!("/orders/{open}/cancel")).await.status(), StatusCode::OK);
    assert_problem(accept(&app, &open, "driver-park").await, StatusCode::CONFLICT).await;
    let riding = place(&app, taxi_call("yoon")).await;
    accept(&app, &riding, "driver-park").await;
    app.wait_for_status(&riding, "accepted").await;
    assert_eq!(app.post(&format!("/deliveries/{riding}/legs/ride/start")).await.status(), StatusCode::OK);
    app.wait_for_status(&riding, "in_delivery").await;
    assert_problem(app.post(&format!("/orders/{riding}/cancel")).await, StatusCode::CONFLICT).await;
}

#[tokio::test]
async fn a_dispatched_ride_starts_and_completes_and_the_passenger_may_cancel_until_it_starts() {
    let app = spawn_app().await;
    let call = |who: &str| json!({"workflow": "taxi", "customer": who, "items": [], "address": "Seoul Station", "payment": "none"});
    let ride = place(&app, call("han")).await;
    assert_eq!(
        app.post_json(&format!("/orders/{ride}/accept"), &json!({"by": "driver-1"})).await.status(),
        StatusCode::OK
    );
    let canceled = place(&app, call("seo")).await;
    assert_eq!(
        app.post_json(&format!("/orders/{canceled}/accept"), &json!({"by": "driver-2"})).await.status(),
        StatusCode::OK
    );
    app.wait_for_status(&canceled, "accepted").await;
    assert_eq!(
        app.post(&format!("/orders/{canceled}/cancel")).await.status(),
        StatusCode::OK,
        "after dispatch, before the ride"
    );
    app.wait_for_status(&canceled, "canceled").await;

    app.wait_for_status(&ride, "accepted").await;
    assert_eq!(app.post(&format!("/deliveries/{ride}/legs/ride/start")).await.status(), StatusCode::OK);
    app.wait_for_status(&ride, "in_delivery").await;
    assert_eq!(
        app.post(&format!("/orders/{ride}/cancel")).await.status(),
        StatusCode::CONFLICT,
        "not once it started"
    );
    assert_eq!(app.post(&format!("/deliveries/{ride}/complete")).await.status(), StatusCode::OK);
    let view = app.wait_for_status(&ride, "closed").await;
    assert_eq!(history(&view), ["placed", "accepted", "in_delivery", "delivered", "closed"]);
}

async fn decline(app: &TestApp, id: &str, driver: &str) -> reqwest::Response {
    app.post_json(&format!("/orders/{id}/reject"), &json!({"by": driver, "reason": "too far"})).await
}

/// A decline does not end the call: it stays open for the other drivers,
/// the decline is recorded, and that driver is not offered it again.
#[tokio::test]
async fn a_driver_who_declines_leaves_the_call_open_for_the_others() {
    let app = spawn_app().await;
    let id = place(&app, taxi_call("yoon")).await;
    assert_eq!(decline(&app, &id, "driver-kim").await.status(), StatusCode::OK);
    assert_eq!(decline(&app, &id, "driver-lee").await.status(), StatusCode::OK);
    app.settle().await;
    let view = app.wait_for_status(&id, "placed").await;
    assert_eq!(view["declined"], json!(["driver-kim", "driver-lee"]));
    let order: Value = app.get(&format!("/orders/{id}")).await.json().await.unwrap();
    assert_eq!(order["declined"], json!(["driver-kim", "driver-lee"]), "each decline once: {order}");
    assert_eq!(view["label"], "open");
    assert_eq!(list(&app, "taxi", "placed").await, std::slice::from_ref(&id), "still an open call");
    let again = assert_problem(accept(&app, &id, "driver-kim").await, StatusCode::CONFLICT).await;
    assert!(again["detail"].as_str().unwrap().contains("driver-kim declined it"), "{again}");
    assert_eq!(accept(&app, &id, "driver-park").await.status(), StatusCode::OK);
    let view = app.wait_for_status(&id, "accepted").await;
    assert_eq!(view["accepted_by"], "driver-park");
    assert_eq!(told(&app, "yoon").await, ["placed", "accepted"], "a decline is no news to the passenger");
}

/// A driver holds one ride at a time (`max_active_per_party = 1`): the next
/// call is his once the ride is over, or canceled.
#[tokio::test]
async fn a_driver_holds_one_ride_at_a_time_and_takes_the_next_once_it_is_over() {
    let app = spawn_app().await;
    let first = place(&app, taxi_call("yoon")).await;
    let second = place(&app, taxi_call("han")).await;
    assert_eq!(accept(&app, &first, "driver-park").await.status(), StatusCode::OK);
    let busy = assert_problem(accept(&app, &second, "driver-park").await, StatusCode::CONFLICT).await;
    assert_eq!(busy["type"], "/problems/party-busy");
    assert!(busy["detail"].as_str().unwrap().contains(&first), "{busy}");
    app.wait_for_status(&first, "accepted").await;
    assert_eq!(app.post(&format!("/deliveries/{first}/legs/ride/start")).await.status(), StatusCode::OK);
    assert_eq!(app.post(&format!("/deliveries/{first}/legs/ride/complete")).await.status(), StatusCode::OK);
    app.wait_for_status(&first, "closed").await;
    assert_eq!(accept(&app, &second, "driver-park").await.status(), StatusCode::OK);
    app.wait_for_status(&second, "accepted").await;
    assert_eq!(app.post(&format!("/orders/{second}/cancel")).await.status(), StatusCode::OK);
    let third = place(&app, taxi_call("seo")).await;
    assert_eq!(accept(&app, &third, "driver-park").await.status(), StatusCode::OK, "free after the cancel");
}

/// The passenger's destination travels with the call, shown to the driver;
/// a mistyped field is refused by name instead of vanishing.
#[tokio::test]
async fn the_destination_is_kept_with_the_call_and_a_mistyped_field_is_refused() {
    let app = spawn_app().await;
    let mut call = taxi_call("yoon");
    call["details"] = json!({"destination": "Gangnam station", "passengers": 2});
    let id = place(&app, call.clone()).await;
    let view = app.wait_for_status(&id, "placed").await;
    assert_eq!(view["details"], json!({"destination": "Gangnam station", "passengers": 2}));
    let order: Value = app.get(&format!("/orders/{id}")).await.json().await.unwrap();
    assert_eq!(order["details"]["destination"], "Gangnam station");
    call.as_object_mut().unwrap().remove("details");
    call["destination"] = json!("Gangnam station");
    let problem =
        assert_problem(app.post_json("/orders", &call).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(problem["detail"].as_str().unwrap().contains("destination"), "{problem}");
    let mut dated = taxi_call("yoon");
    dated["from"] = json!("2027-03-01");
    dated["to"] = json!("2027-03-02");
    let problem =
        assert_problem(app.post_json("/orders", &dated).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(problem["detail"].as_str().unwrap().contains("does not book dates"), "{problem}");
}

mod time {
    use super::*;
    use crate::helpers::{a_few_ticks, spawn_on_clock};
    use fulfil::clock::ManualClock;
    use std::sync::Arc;
    use std::time::Duration;

    /// A call no driver takes is not open for ever: after 10 minutes it
    /// expires, and the passenger is told; a taken call does not expire.
    #[tokio::test]
    async fn a_call_no_driver_takes_expires_after_ten_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::starting_now());
        let app = spawn_on_clock(dir.path(), &clock).await;
        let open = place(&app, taxi_call("yoon")).await;
        let taken = place(&app, taxi_call("han")).await;
        assert_eq!(decline(&app, &open, "driver-kim").await.status(), StatusCode::OK);
        accept(&app, &taken, "driver-park").await;
        app.wait_for_status(&taken, "accepted").await;
        clock.advance(Duration::from_secs(9 * 60));
        a_few_ticks().await;
        app.wait_for_status(&open, "placed").await;
        clock.advance(Duration::from_secs(2 * 60));
        let view = app.wait_for_status(&open, "canceled").await;
        assert_eq!(view["reason"], "expired");
        assert_eq!(told(&app, "yoon").await, ["placed", "canceled"]);
        assert!(list(&app, "taxi", "placed").await.is_empty());
        assert_eq!(app.wait_for_status(&taken, "accepted").await["status"], "accepted");
    }

    /// A ride nobody completes ends after `max_duration` (3 hours) on the
    /// engine's clock, moved here by hand, and its driver is free again.
    #[tokio::test]
    async fn a_ride_nobody_completes_ends_after_its_maximum_duration() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::starting_now());
        let app = spawn_on_clock(dir.path(), &clock).await;
        let ride = place(&app, taxi_call("yoon")).await;
        accept(&app, &ride, "driver-park").await;
        app.wait_for_status(&ride, "accepted").await;
        app.post(&format!("/deliveries/{ride}/legs/ride/start")).await;
        app.wait_for_status(&ride, "in_delivery").await;
        clock.advance(Duration::from_secs(2 * 3600));
        a_few_ticks().await;
        app.wait_for_status(&ride, "in_delivery").await;
        clock.advance(Duration::from_secs(3600));
        let view = app.wait_for_status(&ride, "closed").await;
        assert_eq!(history(&view), ["placed", "accepted", "in_delivery", "delivered", "closed"]);
        let next = place(&app, taxi_call("han")).await;
        assert_eq!(accept(&app, &next, "driver-park").await.status(), StatusCode::OK);
    }
}
