//! One decision per order: two parties who act on the same order at the
//! same instant never both win. For each conflicting pair, 200 orders are
//! brought to the point where both steps are possible, both requests are
//! released together, and exactly one answers 200 while the other answers
//! 409; afterwards the order's status, delivery, units and refunds agree
//! with the winner.

use crate::helpers::{spawn_app_with, TestApp};
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

const PAIRS: usize = 200;
/// Pairs released at once: more would overfill the node's mailboxes and
/// be answered 503 busy, which is back-pressure, not a race.
const WAVE: usize = 16;

async fn post(app: &TestApp, path: &str, body: Value) -> StatusCode {
    let r = app.client.post(app.url(path)).json(&body).send().await.expect("request sent");
    let status = r.status();
    if status.is_server_error() {
        eprintln!("{path}: {status} {}", r.text().await.unwrap_or_default());
    }
    status
}

async fn get(app: &TestApp, path: &str) -> Value {
    app.get(path).await.json().await.unwrap()
}

/// Releases `first` and `second` together for each order, in waves of
/// [`WAVE`] orders; returns for each order whether `first` won.
async fn race(
    app: &TestApp,
    ids: &[String],
    first: (&str, Value),
    second: (&str, Value),
) -> Vec<(String, bool)> {
    let mut outcome = Vec::new();
    for wave in ids.chunks(WAVE) {
        let pairs = wave.iter().map(|id| {
            let (a, b) = (first.0.replace("{id}", id), second.0.replace("{id}", id));
            let (body_a, body_b) = (first.1.clone(), second.1.clone());
            async move {
                let (x, y) = tokio::join!(post(app, &a, body_a), post(app, &b, body_b));
                let wins = [x, y].iter().filter(|s| **s == StatusCode::OK).count();
                assert_eq!(wins, 1, "{id}: {a} → {x}, {b} → {y}: exactly one wins");
                for s in [x, y] {
                    assert!(
                        s == StatusCode::OK || s == StatusCode::CONFLICT,
                        "{id}: the loser is told 409, got {s}"
                    );
                }
                (id.clone(), x == StatusCode::OK)
            }
        });
        outcome.extend(join_all(pairs).await);
    }
    outcome
}

async fn place_all(app: &TestApp, body: impl Fn(usize) -> Value) -> Vec<String> {
    let placed = (0..PAIRS).map(|n| {
        let body = body(n);
        async move {
            let r = app.post_json("/orders", &body).await;
            assert_eq!(r.status(), StatusCode::CREATED, "{body}");
            r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
        }
    });
    join_all(placed).await
}

async fn wait_all(app: &TestApp, ids: &[String], status: &str) {
    join_all(ids.iter().map(|id| app.wait_for_status(id, status))).await;
}

#[tokio::test]
async fn a_passenger_cancel_and_the_driver_starting_the_ride_never_both_win() {
    let app = spawn_app_with(|s| s.http.rate_per_client = 0).await;
    let units: Vec<String> = (0..PAIRS).map(|n| format!("d{n}")).collect();
    let drivers = json!({"sku": "DRV", "name": "Drivers", "price": 0, "units": units});
    assert_eq!(app.post_json("/products", &drivers).await.status(), StatusCode::CREATED);
    let ids = place_all(&app, |n| {
        json!({"customer": format!("p{n}"), "items": [{"sku": "DRV", "qty": 1}], "address": "Gangnam",
               "payment": "none", "workflow": "driver"})
    })
    .await;
    wait_all(&app, &ids, "reserved").await;
    let outcome =
        race(&app, &ids, ("/orders/{id}/cancel", json!({})), ("/deliveries/{id}/legs/ride/start", json!({})))
            .await;
    app.settle().await;

    let mut held = 0;
    for (id, canceled) in &outcome {
        let view = get(&app, &format!("/status/{id}")).await;
        let delivery = get(&app, &format!("/deliveries/{id}")).await;
        if *canceled {
            assert_eq!(view["status"], "canceled", "{id}: {view}");
            assert_eq!(delivery["state"], "stopped", "{id}: {delivery}");
        } else {
            assert_eq!(view["status"], "in_delivery", "{id}: {view}");
            assert_eq!(
                (delivery["state"].clone(), delivery["leg_state"].clone()),
                (json!("in_progress"), json!("in_transit"))
            );
            held += 1;
        }
    }
    let pool = get(&app, "/products/DRV").await;
    assert_eq!(pool["stock"], json!(PAIRS - held), "every canceled call gave its driver back, once: {pool}");
}

#[tokio::test]
async fn a_cancel_and_the_shop_starting_overseas_shipping_never_both_win() {
    let app = spawn_app_with(|s| s.http.rate_per_client = 0).await;
    let ids = place_all(&app, |n| {
        json!({"customer": format!("m{n}"), "items": [], "address": "Seoul", "payment": "card",
               "card": "4111 1111 1111 1111", "workflow": "malltail"})
    })
    .await;
    wait_all(&app, &ids, "paid").await;
    let shop = &app;
    join_all(ids.iter().map(|id| async move {
        assert_eq!(post(shop, &format!("/orders/{id}/accept"), json!({"by": "shop"})).await, StatusCode::OK);
    }))
    .await;
    wait_all(&app, &ids, "accepted").await;
    let outcome = race(
        &app,
        &ids,
        ("/orders/{id}/cancel", json!({})),
        ("/deliveries/{id}/legs/overseas/start", json!({})),
    )
    .await;
    app.settle().await;
    for (id, canceled) in &outcome {
        let view = get(&app, &format!("/status/{id}")).await;
        let payment = &view["payment"]["state"];
        match canceled {
            true => assert_eq!(
                (view["status"].clone(), payment.clone()),
                (json!("canceled"), json!("refunded")),
                "{id}"
            ),
            false => assert_eq!(
                (view["status"].clone(), payment.clone()),
                (json!("in_delivery"), json!("captured")),
                "{id}"
            ),
        }
    }
}

#[tokio::test]
async fn a_cancel_and_a_confirmed_deposit_never_both_win() {
    let app = spawn_app_with(|s| s.http.rate_per_client = 0).await;
    app.add_product("MUG", 1500, PAIRS as i64).await;
    let ids = place_all(&app, |n| {
        json!({"customer": format!("s{n}"), "items": [{"sku": "MUG", "qty": 1}], "address": "Seoul",
               "payment": "bank_transfer"})
    })
    .await;
    wait_all(&app, &ids, "payment_pending").await;
    let outcome =
        race(&app, &ids, ("/orders/{id}/cancel", json!({})), ("/payments/{id}/confirm", json!({}))).await;
    app.settle().await;
    let mut shipped = 0;
    for (id, canceled) in &outcome {
        let view = get(&app, &format!("/status/{id}")).await;
        let expected = if *canceled { "canceled" } else { "in_delivery" };
        assert_eq!(view["status"], expected, "{id}: {view}");
        shipped += usize::from(!canceled);
    }
    assert_eq!(app.stock("MUG").await, (PAIRS - shipped) as i64, "stock agrees with the winners");
}

#[tokio::test]
async fn a_passenger_cancel_and_a_taxi_driver_accepting_never_both_win() {
    // Where a call can be canceled only while it is open, the two exclude
    // each other (the shipped taxi lets a dispatched call be canceled too).
    let app = spawn_app_with(|s| {
        s.http.rate_per_client = 0;
        s.workflows.get_mut("taxi").unwrap().cancel_until = fulfil::domain::OrderStatus::Placed;
    })
    .await;
    let ids = place_all(&app, |n| {
        json!({"customer": format!("t{n}"), "items": [], "address": "Seoul Station", "payment": "none",
               "workflow": "taxi"})
    })
    .await;
    wait_all(&app, &ids, "placed").await;
    let accept = ("/orders/{id}/accept", json!({"by": "driver-1"}));
    let outcome = race(&app, &ids, ("/orders/{id}/cancel", json!({})), accept).await;
    app.settle().await;
    for (id, canceled) in &outcome {
        let view = get(&app, &format!("/status/{id}")).await;
        let expected = if *canceled { "canceled" } else { "accepted" };
        assert_eq!(view["status"], expected, "{id}: {view}");
    }
}

#[tokio::test]
async fn customs_rejecting_and_completing_the_same_checkpoint_never_both_win() {
    let app = spawn_app_with(|s| s.http.rate_per_client = 0).await;
    let ids = place_all(&app, |n| {
        json!({"customer": format!("c{n}"), "items": [], "address": "Seoul", "payment": "card",
               "card": "4111 1111 1111 1111", "workflow": "malltail"})
    })
    .await;
    wait_all(&app, &ids, "paid").await;
    for id in &ids {
        assert_eq!(post(&app, &format!("/orders/{id}/accept"), json!({"by": "shop"})).await, StatusCode::OK);
        for step in ["overseas/start", "overseas/complete", "to_korea/complete"] {
            assert_eq!(post(&app, &format!("/deliveries/{id}/legs/{step}"), json!({})).await, StatusCode::OK);
        }
    }
    let outcome = race(
        &app,
        &ids,
        ("/deliveries/{id}/legs/customs/reject", json!({"reason": "prohibited item"})),
        ("/deliveries/{id}/legs/customs/complete", json!({})),
    )
    .await;
    app.settle().await;
    for (id, rejected) in &outcome {
        let view = get(&app, &format!("/status/{id}")).await;
        match rejected {
            true => assert_eq!(
                (view["status"].clone(), view["reason"].clone()),
                (json!("canceled"), json!("forfeited")),
                "{id}"
            ),
            false => assert_eq!(view["delivery"]["leg"], "domestic", "{id}: {view}"),
        }
    }
}

#[tokio::test]
async fn completing_a_delivery_and_a_late_cancel_never_both_win() {
    let app = spawn_app_with(|s| s.http.rate_per_client = 0).await;
    app.add_product("MUG", 1500, PAIRS as i64).await;
    let ids = place_all(&app, |n| {
        json!({"customer": format!("k{n}"), "items": [{"sku": "MUG", "qty": 1}], "address": "Seoul",
               "payment": "card", "card": "4111 1111 1111 1111"})
    })
    .await;
    wait_all(&app, &ids, "in_delivery").await;
    let outcome =
        race(&app, &ids, ("/deliveries/{id}/complete", json!({})), ("/orders/{id}/cancel", json!({}))).await;
    app.settle().await;
    for (id, completed) in &outcome {
        assert!(completed, "{id}: a shop order in delivery cannot be canceled");
        assert_eq!(get(&app, &format!("/status/{id}")).await["status"], "delivered");
    }
}
