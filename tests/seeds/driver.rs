//! Seed 002, the designated-driver call, as the `driver` workflow.

use super::{place, told};
use crate::helpers::{assert_problem, history, spawn_app, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Two pools of drivers, by transmission type.
async fn dispatcher() -> TestApp {
    let app = spawn_app().await;
    for (sku, drivers) in
        [("automatic", json!(["driver-kim", "driver-choi"])), ("manual", json!(["driver-lee"]))]
    {
        let pool =
            json!({"sku": sku, "name": format!("{sku} transmission drivers"), "price": 0, "units": drivers});
        assert_eq!(app.post_json("/products", &pool).await.status(), StatusCode::CREATED);
    }
    app
}

fn call(customer: &str, transmission: &str) -> Value {
    json!({"workflow": "driver", "customer": customer, "items": [{"sku": transmission, "qty": 1}],
           "address": "Gangnam station exit 5", "payment": "none"})
}

async fn free(app: &TestApp, transmission: &str) -> Value {
    app.get(&format!("/products/{transmission}")).await.json::<Value>().await.unwrap()["units"].clone()
}

#[tokio::test]
async fn a_call_is_assigned_an_available_driver_of_the_chosen_transmission_at_once() {
    let app = dispatcher().await;
    let r = app.post_json("/orders", &call("han", "manual")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let receipt: Value = r.json().await.unwrap();
    assert_eq!(receipt["status"], "reserved", "assigned before the answer");
    let id = receipt["id"].as_str().unwrap();
    let view = app.wait_for_status(id, "reserved").await;
    assert_eq!(view["units"], json!(["driver-lee"]), "the call names its driver");
    assert_eq!(view["label"], "driver assigned");
    assert_eq!(history(&view), ["placed", "reserved"]);
    assert_eq!(free(&app, "manual").await, json!([]));
    assert_eq!(
        free(&app, "automatic").await,
        json!(["driver-kim", "driver-choi"]),
        "the other pool is untouched"
    );
}

#[tokio::test]
async fn with_no_driver_available_the_call_is_refused_immediately() {
    let app = dispatcher().await;
    place(&app, call("han", "manual")).await;
    let problem =
        assert_problem(app.post_json("/orders", &call("seo", "manual")).await, StatusCode::CONFLICT).await;
    assert_eq!(problem["type"], "/problems/nothing-available");
    assert!(problem["detail"].as_str().unwrap().contains("manual"));
    app.settle().await;
    let page: Value = app.get("/status?customer=seo").await.json().await.unwrap();
    assert_eq!(page["orders"], json!([]), "a refused call leaves nothing behind");
}

#[tokio::test]
async fn the_customer_is_told_as_soon_as_a_driver_is_assigned_and_when_cancelled() {
    let app = dispatcher().await;
    let id = place(&app, call("han", "automatic")).await;
    app.wait_for_status(&id, "reserved").await;
    app.settle().await;
    let notes: Value = app.get("/notifications?customer=han").await.json().await.unwrap();
    let assigned = &notes["notifications"][1];
    assert_eq!(assigned["status"], "reserved");
    assert!(assigned["message"].as_str().unwrap().contains("driver-kim"), "{assigned}");
    app.post(&format!("/orders/{id}/cancel")).await;
    app.wait_for_status(&id, "canceled").await;
    assert_eq!(told(&app, "han").await, ["placed", "reserved", "canceled"]);
}

#[tokio::test]
async fn a_cancelled_call_releases_its_driver_for_the_next_call() {
    let app = dispatcher().await;
    let id = place(&app, call("han", "manual")).await;
    assert_eq!(app.post(&format!("/orders/{id}/cancel")).await.status(), StatusCode::OK);
    app.wait_for_status(&id, "canceled").await;
    app.settle().await;
    assert_eq!(free(&app, "manual").await, json!(["driver-lee"]));
    let next = place(&app, call("seo", "manual")).await;
    assert_eq!(app.wait_for_status(&next, "reserved").await["units"], json!(["driver-lee"]));
}

#[tokio::test]
async fn the_driver_starts_the_ride_after_which_the_call_cannot_be_cancelled() {
    let app = dispatcher().await;
    let id = place(&app, call("han", "automatic")).await;
    let r = app.post(&format!("/deliveries/{id}/legs/ride/start")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let view = app.wait_for_status(&id, "in_delivery").await;
    assert_eq!(view["delivery"]["leg"], "ride");
    assert_problem(app.post(&format!("/orders/{id}/cancel")).await, StatusCode::CONFLICT).await;
    assert_eq!(app.post(&format!("/deliveries/{id}/complete")).await.status(), StatusCode::OK);
    let view = app.wait_for_status(&id, "closed").await;
    assert_eq!(history(&view), ["placed", "reserved", "in_delivery", "delivered", "closed"]);
}

/// Seed 002 over time: a driver is used for a ride and then returned. 200
/// rides with 3 drivers, 6 passengers calling at once: every ride completes,
/// no driver is ever on two rides (by the node's own times: each ride of a
/// driver is assigned no earlier than the one before it was delivered), and
/// the pool ends with the 3 drivers.
#[tokio::test]
async fn drivers_come_back_after_each_ride_and_200_rides_share_3_drivers() {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    const RIDES: usize = 200;
    let app = crate::helpers::spawn_app_with(|s| s.http.rate_per_client = 0).await;
    let drivers = json!(["d-kim", "d-lee", "d-choi"]);
    let pool = json!({"sku": "DRV", "name": "Drivers", "price": 0, "units": drivers});
    assert_eq!(app.post_json("/products", &pool).await.status(), StatusCode::CREATED);

    let rides: Arc<Mutex<Vec<String>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let app = &app;
    let passengers = (0..6).map(|p| {
        let rides = rides.clone();
        async move {
            while rides.lock().unwrap().len() < RIDES {
                assert!(Instant::now() < deadline, "the rides did not all complete");
                let body = json!({"workflow": "driver", "customer": format!("p{p}"),
                                  "items": [{"sku": "DRV", "qty": 1}], "address": "Gangnam", "payment": "none"});
                let r = app.post_json("/orders", &body).await;
                if r.status() == StatusCode::CONFLICT {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                assert_eq!(r.status(), StatusCode::CREATED);
                let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
                assert_eq!(app.post(&format!("/deliveries/{id}/legs/ride/start")).await.status(), StatusCode::OK);
                assert_eq!(app.post(&format!("/deliveries/{id}/complete")).await.status(), StatusCode::OK);
                rides.lock().unwrap().push(id);
            }
        }
    });
    futures_util::future::join_all(passengers).await;
    app.settle().await;

    // Each driver's rides, by when they were assigned: (assigned, delivered).
    let mut by_driver: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let rides: Vec<String> = rides.lock().unwrap().clone();
    for id in &rides {
        let view = app.wait_for_status(id, "closed").await;
        let at = |status: &str| {
            let entry = view["history"].as_array().unwrap().iter().find(|h| h["status"] == status);
            entry.unwrap_or_else(|| panic!("{id} was never {status}"))["at"].as_str().unwrap().to_owned()
        };
        let driver = view["units"][0].as_str().unwrap().to_owned();
        by_driver.entry(driver).or_default().push((at("reserved"), at("delivered")));
    }
    assert!(by_driver.values().map(Vec::len).sum::<usize>() >= RIDES);
    for (driver, mut rides) in by_driver {
        rides.sort();
        for pair in rides.windows(2) {
            assert!(
                pair[1].0 >= pair[0].1,
                "{driver} was assigned at {} while on a ride until {}",
                pair[1].0,
                pair[0].1
            );
        }
    }
    let pool: Value = app.get("/products/DRV").await.json().await.unwrap();
    let mut free: Vec<String> =
        pool["units"].as_array().unwrap().iter().map(|u| u.as_str().unwrap().to_owned()).collect();
    free.sort();
    assert_eq!(
        (pool["stock"].clone(), free),
        (json!(3), vec!["d-choi".to_string(), "d-kim".into(), "d-lee".into()])
    );
}

#[tokio::test]
async fn a_driver_on_a_ride_cannot_be_added_to_the_pool_again() {
    let app = dispatcher().await;
    let id = place(&app, call("han", "manual")).await;
    app.wait_for_status(&id, "reserved").await;
    app.settle().await;
    let again = app.post_json("/products/manual/restock", &json!({"units": ["driver-lee"]})).await;
    let problem = assert_problem(again, StatusCode::CONFLICT).await;
    assert_eq!(problem["type"], "/problems/unit-in-use");
    assert!(problem["detail"].as_str().unwrap().contains(&id), "{problem}");

    assert_eq!(app.post(&format!("/deliveries/{id}/legs/ride/start")).await.status(), StatusCode::OK);
    assert_eq!(app.post(&format!("/deliveries/{id}/complete")).await.status(), StatusCode::OK);
    app.wait_for_status(&id, "closed").await;
    app.settle().await;
    assert_eq!(free(&app, "manual").await, json!(["driver-lee"]), "back once, not twice");
    let next = place(&app, call("seo", "manual")).await;
    assert_eq!(app.wait_for_status(&next, "reserved").await["units"], json!(["driver-lee"]));
}

/// A pool is restocked by name only, even while every driver is out on a
/// ride (its stock is 0 then, yet it is still a pool of named drivers).
#[tokio::test]
async fn a_pool_with_every_driver_out_still_refuses_a_numeric_restock() {
    let app = dispatcher().await;
    let id = place(&app, call("han", "manual")).await;
    app.wait_for_status(&id, "reserved").await;
    app.settle().await;
    assert_eq!(free(&app, "manual").await, json!([]));
    let numeric = app.post_json("/products/manual/restock", &json!({"qty": 2})).await;
    let problem = assert_problem(numeric, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(problem["detail"].as_str().unwrap().contains("restock it with units"), "{problem}");
    let product: Value = app.get("/products/manual").await.json().await.unwrap();
    assert_eq!(product["stock"], 0, "nothing changed");
}

/// A driver off duty is not assigned; one on a ride goes off duty only once
/// the ride is over, and is assigned again once back on duty.
#[tokio::test]
async fn a_driver_off_duty_is_not_assigned_until_back_on_duty() {
    let app = dispatcher().await;
    let id = place(&app, call("han", "manual")).await;
    app.wait_for_status(&id, "reserved").await;
    app.settle().await;
    let riding = app.post("/products/manual/units/driver-lee/out-of-service").await;
    let problem = assert_problem(riding, StatusCode::CONFLICT).await;
    assert!(problem["detail"].as_str().unwrap().contains(&id), "{problem}");
    app.post(&format!("/deliveries/{id}/legs/ride/start")).await;
    app.post(&format!("/deliveries/{id}/complete")).await;
    app.wait_for_status(&id, "closed").await;
    app.settle().await;
    assert_eq!(app.post("/products/manual/units/driver-lee/out-of-service").await.status(), StatusCode::OK);
    let refused = app.post_json("/orders", &call("seo", "manual")).await;
    assert_eq!(assert_problem(refused, StatusCode::CONFLICT).await["type"], "/problems/nothing-available");
    assert_eq!(app.post("/products/manual/units/driver-lee/in-service").await.status(), StatusCode::OK);
    let next = place(&app, call("seo", "manual")).await;
    assert_eq!(app.wait_for_status(&next, "reserved").await["units"], json!(["driver-lee"]));
}
