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

/// Two nights, 1 to 3 March 2027.
const FROM: &str = "2027-03-01";
const TO: &str = "2027-03-03";

fn booking(customer: &str) -> Value {
    stay(customer, FROM, TO)
}

fn stay(customer: &str, from: &str, to: &str) -> Value {
    json!({"workflow": "hotel", "customer": customer, "items": [{"sku": "deluxe", "qty": 1}],
           "address": "Seoul", "payment": "card", "card": card(), "from": from, "to": to,
           "details": {"guests": 2}})
}

/// The deluxe rooms free on the nights of [`booking`].
async fn free_rooms(app: &TestApp) -> Value {
    free_between(app, FROM, TO).await
}

async fn free_between(app: &TestApp, from: &str, to: &str) -> Value {
    let r = app.get(&format!("/products/deluxe/availability?from={from}&to={to}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["free"].clone()
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
    assert_eq!(view["stay"], json!({"from": FROM, "to": TO}));
    assert_eq!(view["details"], json!({"guests": 2}), "the business's own details are kept and shown");
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
    assert_eq!(free_rooms(&app).await, json!(["room-701", "room-702"]), "the room is free again");
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
    assert_eq!(free_rooms(&app).await, json!(["room-701", "room-702"]));
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
    assert_eq!(problem["detail"], "no deluxe is free for these dates");
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

/// One room of a type: booked for March and for May, never for two stays
/// that share a night; back to back is fine.
#[tokio::test]
async fn one_room_is_booked_for_stays_that_do_not_overlap_and_never_for_two_that_do() {
    let app = spawn_app().await;
    let suite = json!({"sku": "deluxe", "name": "Suite", "price": 300000, "units": ["suite-1"]});
    assert_eq!(app.post_json("/products", &suite).await.status(), StatusCode::CREATED);
    let march = place(&app, stay("park", "2027-03-01", "2027-03-03")).await;
    let may = place(&app, stay("kang", "2027-05-01", "2027-05-02")).await;
    let back_to_back = place(&app, stay("seo", "2027-03-03", "2027-03-04")).await;
    for id in [&march, &may, &back_to_back] {
        let view = app.wait_for_status(id, "reserved").await;
        assert_eq!(view["units"], json!(["suite-1"]));
    }
    let overlapping = app.post_json("/orders", &stay("yoon", "2027-03-02", "2027-03-05")).await;
    let problem = assert_problem(overlapping, StatusCode::CONFLICT).await;
    assert_eq!(problem["detail"], "no deluxe is free for these dates");
    assert_eq!(free_between(&app, "2027-03-02", "2027-03-05").await, json!([]));
    assert_eq!(free_between(&app, "2027-04-01", "2027-04-30").await, json!(["suite-1"]));
}

/// The guest checks in (the stay leg starts) and out (it completes): the
/// booking closes and its room is free again for those nights at once.
#[tokio::test]
async fn the_guest_checks_in_and_out_and_the_room_is_free_again_at_once() {
    let app = hotel().await;
    let id = place(&app, booking("park")).await;
    app.wait_for_status(&id, "reserved").await;
    app.post_json(&format!("/orders/{id}/accept"), &json!({"by": "Hotel Seoul"})).await;
    app.wait_for_status(&id, "accepted").await;
    assert_eq!(app.post(&format!("/deliveries/{id}/legs/stay/start")).await.status(), StatusCode::OK);
    let view = app.wait_for_status(&id, "in_delivery").await;
    assert_eq!(view["label"], "checked in");
    assert_problem(app.post(&format!("/orders/{id}/cancel")).await, StatusCode::CONFLICT).await;
    assert_eq!(free_rooms(&app).await, json!(["room-702"]));
    assert_eq!(app.post(&format!("/deliveries/{id}/legs/stay/complete")).await.status(), StatusCode::OK);
    let view = app.wait_for_status(&id, "closed").await;
    assert_eq!(view["label"], "checked out");
    app.settle().await;
    assert_eq!(free_rooms(&app).await, json!(["room-701", "room-702"]));
    let next = place(&app, booking("kang")).await;
    assert_eq!(app.wait_for_status(&next, "reserved").await["units"], json!(["room-701"]));
}

#[tokio::test]
async fn a_booking_needs_its_dates_and_bad_dates_are_refused_naming_the_field() {
    let app = hotel().await;
    let mut undated = booking("park");
    undated.as_object_mut().unwrap().retain(|k, _| k != "from" && k != "to");
    let problem =
        assert_problem(app.post_json("/orders", &undated).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(problem["detail"].as_str().unwrap().contains("give from and to"), "{problem}");
    for (from, to, says) in [
        ("2027-03-03", "2027-03-01", "must be after"),
        ("2027-02-30", "2027-03-01", "from must be a date"),
        ("2027-03-01", "2027-03-02T11:00:00Z", "both be dates"),
    ] {
        let r = app.post_json("/orders", &stay("park", from, to)).await;
        let problem = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(problem["detail"].as_str().unwrap().contains(says), "{from}..{to}: {problem}");
    }
    let r = app.get("/products/deluxe/availability?from=2027-03-01").await;
    assert_problem(r, StatusCode::BAD_REQUEST).await;
    let r = app.get("/products/deluxe/availability?from=2027-03-05&to=2027-03-01").await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    app.settle().await;
    assert_eq!(free_rooms(&app).await, json!(["room-701", "room-702"]), "nothing was booked");
}

/// A room under repair is not booked until it is back in service.
#[tokio::test]
async fn a_room_out_of_service_is_not_booked_until_it_is_back() {
    let app = hotel().await;
    let r = app.post("/products/deluxe/units/room-701/out-of-service").await;
    assert_eq!(r.status(), StatusCode::OK);
    let product: Value = r.json().await.unwrap();
    assert_eq!(
        (product["units"].clone(), product["out_of_service"].clone()),
        (json!(["room-702"]), json!(["room-701"]))
    );
    assert_eq!(free_rooms(&app).await, json!(["room-702"]));
    place(&app, booking("park")).await;
    let full = app.post_json("/orders", &booking("kang")).await;
    assert_problem(full, StatusCode::CONFLICT).await;
    assert_eq!(app.post("/products/deluxe/units/room-701/in-service").await.status(), StatusCode::OK);
    let id = place(&app, booking("kang")).await;
    assert_eq!(app.wait_for_status(&id, "reserved").await["units"], json!(["room-701"]));
    let r = app.post("/products/deluxe/units/room-999/out-of-service").await;
    assert_problem(r, StatusCode::NOT_FOUND).await;
}

mod time {
    use super::*;
    use crate::helpers::{a_few_ticks, spawn_on_clock};
    use fulfil::clock::ManualClock;
    use std::sync::Arc;
    use std::time::Duration;

    /// A guest who never checks out is checked out when the stay's dates
    /// end: a timer on the engine's clock, moved here by hand.
    #[tokio::test]
    async fn a_stay_ends_by_itself_when_its_dates_do() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::starting_now());
        let app = spawn_on_clock(dir.path(), &clock).await;
        let rooms = json!({"sku": "deluxe", "name": "Deluxe", "price": 180000, "units": ["room-701"]});
        app.post_json("/products", &rooms).await;
        let id = place(&app, booking("park")).await;
        app.wait_for_status(&id, "reserved").await;
        app.post_json(&format!("/orders/{id}/accept"), &json!({"by": "Hotel Seoul"})).await;
        app.wait_for_status(&id, "accepted").await;
        app.post(&format!("/deliveries/{id}/legs/stay/start")).await;
        app.wait_for_status(&id, "in_delivery").await;
        let end_ms = fulfil::domain::stay::Stay::parse(FROM, TO).unwrap().end_ms();
        let until_checkout = end_ms - fulfil::clock::Clock::now_ms(clock.as_ref());
        clock.advance(Duration::from_millis(until_checkout - 60_000));
        a_few_ticks().await;
        app.wait_for_status(&id, "in_delivery").await;
        clock.advance(Duration::from_secs(120));
        let view = app.wait_for_status(&id, "closed").await;
        assert_eq!(view["label"], "checked out");
        app.settle().await;
        assert_eq!(free_rooms(&app).await, json!(["room-701"]));
    }
}

/// Messages in the customer's language: a booking that asks for Korean is
/// told in the hotel's Korean words, with its room and the hotel's name; a
/// language the workflow does not speak is refused by name.
#[tokio::test]
async fn a_guest_who_asks_for_korean_is_told_in_korean() {
    let app = hotel().await;
    let mut korean = booking("park");
    korean["lang"] = json!("ko");
    let id = place(&app, korean).await;
    app.wait_for_status(&id, "reserved").await;
    app.post_json(&format!("/orders/{id}/accept"), &json!({"by": "Hotel Seoul"})).await;
    app.wait_for_status(&id, "accepted").await;
    app.settle().await;
    let notes: Value = app.get("/notifications?customer=park").await.json().await.unwrap();
    let messages: Vec<&str> =
        notes["notifications"].as_array().unwrap().iter().map(|n| n["message"].as_str().unwrap()).collect();
    assert!(messages[2].contains("room-701 객실이 배정되었습니다"), "{messages:?}");
    assert!(messages[3].contains("확정되었습니다 (Hotel Seoul)"), "{messages:?}");
    let mut klingon = booking("kim");
    klingon["lang"] = json!("tlh");
    let r = app.post_json("/orders", &klingon).await;
    let problem = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(problem["detail"].as_str().unwrap().contains("speaks en, ko"), "{problem}");
}
