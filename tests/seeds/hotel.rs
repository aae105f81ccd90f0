//! Seed 001, hotel booking (GotoHotel), as the `hotel` workflow.

use super::{card, list, place, told};
use crate::helpers::{assert_problem, history, spawn_app, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn hotel() -> TestApp {
    let app = spawn_app().await;
    let rooms =
        json!({"sku": "deluxe", "name": "Deluxe double", "price": 180000, "units": ["room-701", "room-702"]});
    assert_eq!(app.post_json("/products", &rooms).await.status(), StatusCode::CREATED);
    app
}

fn booking(customer: &str) -> Value {
    json!({"workflow": "hotel", "customer": customer, "items": [{"sku": "deluxe", "qty": 1}],
           "address": "check-in 2026-12-24", "payment": "card", "card": card()})
}

async fn free_rooms(app: &TestApp) -> Value {
    app.get("/products/deluxe").await.json::<Value>().await.unwrap()["units"].clone()
}

#[tokio::test]
async fn a_customer_chooses_a_room_type_books_it_and_pays_and_a_room_is_held() {
    let app = hotel().await;
    let id = place(&app, booking("park")).await;
    let view = app.wait_for_status(&id, "reserved").await;
    assert_eq!(history(&view), ["placed", "paid", "reserved"]);
    assert_eq!(view["payment"]["state"], "captured");
    assert_eq!(view["units"], json!(["room-701"]), "the booking names the room it holds");
    assert_eq!(view["label"], "awaiting hotel confirmation");
    assert_eq!(free_rooms(&app).await, json!(["room-702"]));
}

#[tokio::test]
async fn an_unpaid_booking_never_reaches_the_hotel() {
    let app = hotel().await;
    let mut declined = booking("park");
    declined["card"] = json!("4000 0000 0000 0002");
    assert_problem(app.post_json("/orders", &declined).await, StatusCode::PAYMENT_REQUIRED).await;
    app.node
        .inject_fault_named("gateway", fulfil::faults::FaultSpec { fail_rate: 1.0, ..Default::default() })
        .unwrap();
    let r = app.post_json("/orders", &booking("park")).await;
    assert_eq!(
        assert_problem(r, StatusCode::SERVICE_UNAVAILABLE).await["type"],
        "/problems/payment-unavailable"
    );
    app.settle().await;
    assert!(list(&app, "hotel", "reserved").await.is_empty());
    assert_eq!(free_rooms(&app).await, json!(["room-701", "room-702"]));
}

#[tokio::test]
async fn the_hotel_receives_only_paid_bookings_and_confirms_one() {
    let app = hotel().await;
    let id = place(&app, booking("park")).await;
    app.wait_for_status(&id, "reserved").await;
    assert_eq!(list(&app, "hotel", "reserved").await, std::slice::from_ref(&id));
    let r = app.post_json(&format!("/orders/{id}/accept"), &json!({"by": "Hotel Seoul"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let view = app.wait_for_status(&id, "accepted").await;
    assert_eq!(
        (view["label"].as_str(), view["accepted_by"].as_str()),
        (Some("confirmed"), Some("Hotel Seoul"))
    );
    assert!(list(&app, "hotel", "reserved").await.is_empty());
    let again = app.post_json(&format!("/orders/{id}/accept"), &json!({"by": "night desk"})).await;
    let problem = assert_problem(again, StatusCode::CONFLICT).await;
    assert_eq!(problem["type"], "/problems/already-taken");
    assert!(problem["detail"].as_str().unwrap().contains("this booking is already confirmed"));
}

#[tokio::test]
async fn the_confirmation_and_every_status_change_are_sent_to_the_customer() {
    let app = hotel().await;
    let id = place(&app, booking("park")).await;
    app.wait_for_status(&id, "reserved").await;
    app.post_json(&format!("/orders/{id}/accept"), &json!({"by": "Hotel Seoul"})).await;
    app.wait_for_status(&id, "accepted").await;
    assert_eq!(told(&app, "park").await, ["placed", "paid", "reserved", "accepted"]);
}

#[tokio::test]
async fn a_cancelled_booking_is_cancelled_at_the_hotel_its_room_released_and_its_payment_refunded() {
    let app = hotel().await;
    let id = place(&app, booking("park")).await;
    app.wait_for_status(&id, "reserved").await;
    app.post_json(&format!("/orders/{id}/accept"), &json!({"by": "Hotel Seoul"})).await;
    app.wait_for_status(&id, "accepted").await;
    assert_eq!(app.post(&format!("/orders/{id}/cancel")).await.status(), StatusCode::OK);
    app.wait_for_status(&id, "canceled").await;
    app.settle().await;
    let view: Value = app.get(&format!("/status/{id}")).await.json().await.unwrap();
    assert_eq!(view["payment"]["state"], "refunded");
    assert_eq!(free_rooms(&app).await, json!(["room-702", "room-701"]), "the room is free again");
    assert_eq!(list(&app, "hotel", "canceled").await, [id], "the hotel sees the cancellation");
}

#[tokio::test]
async fn a_booking_the_hotel_declines_is_refunded_and_its_room_released() {
    let app = hotel().await;
    let id = place(&app, booking("park")).await;
    app.wait_for_status(&id, "reserved").await;
    let r = app
        .post_json(&format!("/orders/{id}/reject"), &json!({"by": "Hotel Seoul", "reason": "renovation"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let view = app.wait_for_status(&id, "rejected").await;
    assert_eq!(view["reason"], "renovation");
    app.settle().await;
    let view: Value = app.get(&format!("/status/{id}")).await.json().await.unwrap();
    assert_eq!(view["payment"]["state"], "refunded");
    assert_eq!(free_rooms(&app).await, json!(["room-702", "room-701"]));
}

#[tokio::test]
async fn the_customer_sees_the_bookings_progress_on_my_page() {
    let app = hotel().await;
    let first = place(&app, booking("park")).await;
    let second = place(&app, booking("park")).await;
    app.wait_for_status(&second, "reserved").await;
    let page: Value = app.get("/status?customer=park").await.json().await.unwrap();
    let ids: Vec<&str> =
        page["orders"].as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [first.as_str(), second.as_str()]);
}

#[tokio::test]
async fn a_full_hotel_says_there_is_no_room_before_charging_anything() {
    let app = hotel().await;
    place(&app, booking("park")).await;
    place(&app, booking("kang")).await;
    let full = app.post_json("/orders", &booking("seo")).await;
    let problem = assert_problem(full, StatusCode::CONFLICT).await;
    assert_eq!(problem["type"], "/problems/nothing-available");
    assert!(problem["detail"].as_str().unwrap().contains("deluxe"), "{problem}");
    app.settle().await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let approved = metrics.lines().find(|l| l.starts_with("fulfil_payments_total{outcome=\"approved\"}"));
    assert_eq!(
        approved,
        Some("fulfil_payments_total{outcome=\"approved\"} 2"),
        "two charges, none for the full hotel"
    );
    let page: Value = app.get("/status?customer=seo").await.json().await.unwrap();
    assert_eq!(page["orders"], json!([]), "nothing is left of the refused booking");
}
