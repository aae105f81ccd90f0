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
        let (a, b) = tokio::join!(accept(&app, &id, "driver-a"), accept(&app, &id, "driver-b"));
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
