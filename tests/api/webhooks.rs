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

const SECRET: &str = "0123456789abcdef-secret";

/// What a receiver got: (signature header, body).
type Received = Arc<Mutex<Vec<(String, Value)>>>;

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

async fn subscribe(app: &TestApp, url: &str) {
    let r = app.post_json("/subscriptions", &json!({"url": url, "workflow": "shop", "secret": SECRET})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["signed"], true);
    assert!(body.get("secret").is_none(), "the secret is never shown");
}

async fn until_received(got: &Received, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while got.lock().unwrap().len() < n {
        assert!(Instant::now() < deadline, "{} of {n} received", got.lock().unwrap().len());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn quick(s: &mut fulfil::Settings) {
    s.webhooks.tick_ms = 10;
    s.webhooks.retry_min_ms = 20;
    s.webhooks.retry_max_ms = 100;
    s.webhooks.timeout_ms = 500;
}

/// Places three bank-transfer orders and pays the first: 5 + 2 + 2 status
/// changes.
async fn nine_changes(app: &TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    for c in ["kim", "lee", "seo"] {
        ids.push(app.place(&order_body(c, "MUG", 1, "bank_transfer")).await);
    }
    assert_eq!(app.post(&format!("/payments/{}/confirm", ids[0])).await.status(), StatusCode::OK);
    app.wait_for_status(&ids[0], "in_delivery").await;
    ids
}

fn check(got: &Received) {
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

/// A receiver that hangs holds up its own queue only: orders go on, and
/// another receiver gets everything at once.
#[tokio::test]
async fn a_receiver_that_hangs_delays_neither_orders_nor_another_receiver() {
    let app = spawn_app_with(quick).await;
    app.add_product("MUG", 1500, 10).await;
    let (hanging, _) = receiver(0, Duration::from_secs(30)).await;
    let (url, got) = receiver(0, Duration::ZERO).await;
    subscribe(&app, &hanging).await;
    subscribe(&app, &url).await;
    let started = Instant::now();
    nine_changes(&app).await;
    let orders_took = started.elapsed();
    until_received(&got, 9, Duration::from_secs(5)).await;
    check(&got);
    assert!(orders_took < Duration::from_secs(5), "orders went on: {orders_took:?}");
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
