//! Webhooks on real parts: a real HTTP receiver on a port the test picks
//! gets every notification its subscription wants, signed, in order per
//! order; one that fails gets them on retry; one that hangs holds up
//! nobody else.

use crate::helpers::{order_body, spawn_app_with, TestApp};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const SECRET: &str = "0123456789abcdef-secret";

/// What a receiver got: (signature header, body).
pub(crate) type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A receiver on port 0 that fails its first `fail_first` requests (500)
/// and waits `hang` before answering each one.
async fn receiver(fail_first: usize, hang: Duration) -> (String, Received) {
    let got: Received = Arc::default();
    let seen = Arc::new(AtomicUsize::new(0));
    let state = (got.clone(), seen);
    let server = HttpServer::new(move || {
        let (got, seen) = state.clone();
        App::new().route(
            "/hook",
            web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let (got, seen) = (got.clone(), seen.clone());
                async move {
                    tokio::time::sleep(hang).await;
                    if seen.fetch_add(1, Ordering::SeqCst) < fail_first {
                        return HttpResponse::InternalServerError().finish();
                    }
                    let signature =
                        req.headers().get("Fulfil-Signature").map(|v| v.to_str().unwrap().to_owned());
                    let body: Value = serde_json::from_slice(&body).unwrap();
                    got.lock().unwrap().push((signature.unwrap_or_default(), body));
                    HttpResponse::Ok().finish()
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let url = format!("http://{}/hook", server.addrs()[0]);
    tokio::spawn(server.run());
    (url, got)
}

pub(crate) async fn subscribe(app: &TestApp, url: &str) {
    let r = app.post_json("/subscriptions", &json!({"url": url, "workflow": "shop", "secret": SECRET})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["signed"], true);
    assert!(body.get("secret").is_none(), "the secret is never shown");
}

pub(crate) async fn until_received(got: &Received, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while got.lock().unwrap().len() < n {
        assert!(Instant::now() < deadline, "{} of {n} received", got.lock().unwrap().len());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) fn quick(s: &mut fulfil::Settings) {
    s.webhooks.tick_ms = 10;
    s.webhooks.retry_min_ms = 20;
    s.webhooks.retry_max_ms = 100;
    s.webhooks.timeout_ms = 500;
}

/// Places three bank-transfer orders and pays the first: 5 + 2 + 2 status
/// changes.
pub(crate) async fn nine_changes(app: &TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    for c in ["kim", "lee", "seo"] {
        ids.push(app.place(&order_body(c, "MUG", 1, "bank_transfer")).await);
    }
    assert_eq!(app.post(&format!("/payments/{}/confirm", ids[0])).await.status(), StatusCode::OK);
    app.wait_for_status(&ids[0], "in_delivery").await;
    ids
}

pub(crate) fn check(got: &Received) {
    let got = got.lock().unwrap();
    let mut last_event: std::collections::HashMap<String, u64> = Default::default();
    for (signature, body) in got.iter() {
        let expected = fulfil::actors::notification::signature(SECRET, &body.to_string());
        assert_eq!(*signature, expected, "every delivery verifies: {body}");
        let order = body["order_id"].as_str().unwrap().to_owned();
        let event = body["event"].as_u64().unwrap();
        let before = last_event.insert(order, event).unwrap_or(0);
        assert!(event > before, "in order per order");
    }
    let ids: std::collections::HashSet<&str> = got.iter().map(|(_, b)| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), got.len(), "each delivered once here (the receiver answered every one)");
}

#[tokio::test]
async fn every_notification_arrives_signed_and_in_order_per_order() {
    let app = spawn_app_with(quick).await;
    app.add_product("MUG", 1500, 10).await;
    let (url, got) = receiver(0, Duration::ZERO).await;
    subscribe(&app, &url).await;
    nine_changes(&app).await;
    until_received(&got, 9, Duration::from_secs(5)).await;
    check(&got);
    let first = &got.lock().unwrap()[0].1;
    assert_eq!((first["status"].as_str(), first["label"].as_str()), (Some("placed"), Some("placed")));
}

#[tokio::test]
async fn a_receiver_that_fails_at_first_gets_everything_on_retry() {
    let app = spawn_app_with(quick).await;
    app.add_product("MUG", 1500, 10).await;
    let (url, got) = receiver(3, Duration::ZERO).await;
    subscribe(&app, &url).await;
    nine_changes(&app).await;
    until_received(&got, 9, Duration::from_secs(10)).await;
    check(&got);
}

/// A receiver that hangs holds up its own queue only: orders, and another
/// receiver's deliveries, go as fast beside it as without it (rounds of the
/// same run without the hanging receiver are the baseline).
#[tokio::test]
async fn a_receiver_that_hangs_delays_neither_orders_nor_another_receiver() {
    let app = spawn_app_with(quick).await;
    app.add_product("MUG", 1500, 20).await;
    let (url, got) = receiver(0, Duration::ZERO).await;
    subscribe(&app, &url).await;
    round(&app, &got).await; // warm-up
                             // A sender held up by the hanging receiver would wait its 500 ms
                             // timeout per delivery: tens of times as long.
    let alone = [round(&app, &got).await, round(&app, &got).await, round(&app, &got).await];
    let (hanging, _) = receiver(0, Duration::from_secs(30)).await;
    subscribe(&app, &hanging).await;
    let beside = [round(&app, &got).await, round(&app, &got).await, round(&app, &got).await];
    check(&got);
    let total = |rounds: &[Duration]| rounds.iter().sum::<Duration>().as_secs_f64();
    let ratio = total(&beside) / total(&alone);
    assert!(ratio < 4.0, "{ratio:.2}× as long beside a hanging receiver: {alone:?} then {beside:?}");
}

/// Nine status changes, until the receiver has them all: how long it took.
async fn round(app: &TestApp, got: &Received) -> Duration {
    let started = Instant::now();
    let expected = got.lock().unwrap().len() + 9;
    nine_changes(app).await;
    until_received(got, expected, Duration::from_secs(10)).await;
    started.elapsed()
}

/// A subscription for a party hears the party's words (the hotel: a new
/// paid booking to confirm), a subscription for the customer the
/// customer's.
#[tokio::test]
async fn a_party_hears_its_own_words() {
    let app = spawn_app_with(quick).await;
    let rooms = json!({"sku": "deluxe", "name": "Deluxe", "price": 180000, "units": ["room-701"]});
    app.post_json("/products", &rooms).await;
    let (hotel_url, hotel) = receiver(0, Duration::ZERO).await;
    let (guest_url, guest) = receiver(0, Duration::ZERO).await;
    let r = app
        .post_json("/subscriptions", &json!({"url": hotel_url, "party": "hotel", "events": ["reserved"]}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .post_json("/subscriptions", &json!({"url": guest_url, "customer": "park", "events": ["reserved"]}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let booking = json!({"workflow": "hotel", "customer": "park", "items": [{"sku": "deluxe", "qty": 1}],
        "address": "Seoul", "payment": "card", "card": "4111 1111 1111 1111", "from": "2027-03-01", "to": "2027-03-03"});
    app.place(&booking).await;
    until_received(&hotel, 1, Duration::from_secs(5)).await;
    until_received(&guest, 1, Duration::from_secs(5)).await;
    let to_hotel = hotel.lock().unwrap()[0].1["message"].as_str().unwrap().to_owned();
    let to_guest = guest.lock().unwrap()[0].1["message"].as_str().unwrap().to_owned();
    assert!(to_hotel.starts_with("새 결제 완료 예약") && to_hotel.contains("room-701"), "{to_hotel}");
    assert!(to_guest.contains("room-701") && !to_guest.contains("새 결제"), "{to_guest}");
}

/// A party's subscription may ask for another language the workflow has
/// its words in; one nobody speaks is refused, naming those spoken.
#[tokio::test]
async fn a_party_hears_its_words_in_the_language_its_subscription_asks_for() {
    let app = spawn_app_with(quick).await;
    let rooms = json!({"sku": "deluxe", "name": "Deluxe", "price": 180000, "units": ["room-701"]});
    app.post_json("/products", &rooms).await;
    let french =
        json!({"url": "http://127.0.0.1:9/hook", "party": "hotel", "workflow": "hotel", "lang": "fr"});
    let problem = crate::helpers::assert_problem(
        app.post_json("/subscriptions", &french).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("en, ko"), "{problem}");
    let (url, english) = receiver(0, Duration::ZERO).await;
    let sub = json!({"url": url, "party": "hotel", "lang": "en", "events": ["reserved", "canceled"]});
    let r = app.post_json("/subscriptions", &sub).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.json::<Value>().await.unwrap()["lang"], "en");
    let booking = json!({"workflow": "hotel", "customer": "park", "items": [{"sku": "deluxe", "qty": 1}], "lang": "ko",
        "address": "Seoul", "payment": "card", "card": "4111 1111 1111 1111", "from": "2027-03-01", "to": "2027-03-03"});
    let id = app.place(&booking).await;
    app.wait_for_status(&id, "reserved").await;
    app.post(&format!("/orders/{id}/cancel")).await;
    until_received(&english, 3, Duration::from_secs(5)).await;
    let got: Vec<String> =
        english.lock().unwrap().iter().map(|(_, b)| b["message"].as_str().unwrap().to_owned()).collect();
    assert_eq!(got[0], format!("New paid booking {id}: room room-701. Please confirm or decline it."));
    assert_eq!(
        got[1],
        format!("Booking {id} was canceled (at the customer's request); its room is free again.")
    );
    // The refund has no words of the hotel's: the customer's, in English
    // (asked for), though the guest booked in Korean.
    assert!(got[2].starts_with("Your payment of 180000") && got[2].contains("refunded"), "{got:?}");
}
