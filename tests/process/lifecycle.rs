//! Units and timers under crashes: drivers taken for rides and returned,
//! unpaid orders expiring, while the node is killed. Load clients for the
//! driver workflow, and the store invariants of units and timers.

use crate::helpers::{client, Acked};
use fulfil::domain::{Event, EventKind, Order, OrderId, OrderStatus, Product};
use fulfil::store::{decode, Store};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The pool of drivers the driver clients call on.
pub const DRIVERS: [&str; 3] = ["d-kim", "d-lee", "d-choi"];
pub const POOL: &str = "DRV";

pub async fn add_drivers(address: &str) {
    let body = json!({"sku": POOL, "name": "Drivers", "price": 0, "units": DRIVERS});
    let r = client().post(format!("{address}/products")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

/// One driver-call client: calls a driver, then rides (start, complete) or
/// cancels every third call, until stopped or the node is gone. "No driver
/// free" is an expected answer.
pub async fn driver_loop(
    address: String,
    c: usize,
    round: usize,
    acked: Arc<Mutex<Vec<Acked>>>,
    unexpected: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) {
    let http = client();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let body = json!({"workflow": "driver", "customer": format!("p{c}"),
                          "items": [{"sku": POOL, "qty": 1}], "address": "Gangnam", "payment": "none"});
        let sent = http
            .post(format!("{address}/orders"))
            .header("Idempotency-Key", format!("r{round}-p{c}-n{n}"))
            .header("X-Client-Id", format!("p{c}"))
            .json(&body)
            .send()
            .await;
        let Ok(r) = sent else { return };
        match r.status() {
            StatusCode::CREATED => {
                let Ok(v) = r.json::<Value>().await else { return };
                let id = v["id"].as_str().unwrap_or_default().to_owned();
                acked.lock().unwrap().push(Acked { id: id.clone() });
                let steps: &[&str] = match n % 3 {
                    0 => &["orders/{id}/cancel"],
                    _ => &["deliveries/{id}/legs/ride/start", "deliveries/{id}/complete"],
                };
                for step in steps {
                    let url = format!("{address}/{}", step.replace("{id}", &id));
                    let Ok(r) = http.post(url).send().await else { return };
                    if r.status() == StatusCode::SERVICE_UNAVAILABLE
                        && r.headers().contains_key("retry-after")
                    {
                        // No node leads just now (failover): the ride is
                        // left half-way, and `finish_rides` ends it.
                        break;
                    }
                    if r.status() != StatusCode::OK {
                        let text = r.text().await.unwrap_or_default();
                        unexpected.lock().unwrap().push(format!("{step} of {id}: {text}"));
                    }
                }
            }
            StatusCode::CONFLICT | StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            other => {
                let text = r.text().await.unwrap_or_default();
                unexpected.lock().unwrap().push(format!("{other}: {text}"));
            }
        }
    }
}

/// Unpaid bank transfers expire this soon in the crash tests, so that
/// timers are written, fire and fall due while the node is down.
pub const EXPIRY: [(&str, &str); 2] =
    [("FULFIL_WORKFLOWS__SHOP__EXPIRE__PAYMENT_PENDING", "300ms"), ("FULFIL_TIMERS__TICK_MS", "50")];

/// Waits until the shop has no unpaid order left: each expired on its timer.
pub async fn until_nothing_is_unpaid(address: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let url = format!("{address}/status?workflow=shop&status=payment_pending&limit=1");
        let page: serde_json::Value = client().get(url).send().await.unwrap().json().await.unwrap();
        if page["orders"].as_array().is_some_and(Vec::is_empty) {
            return;
        }
        assert!(Instant::now() < deadline, "unpaid orders did not expire: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Finishes the rides a kill left half-way: a driver assigned before the
/// kill starts and completes his ride after the restart, and is free again.
pub async fn finish_rides(address: &str, acked: &[Acked]) {
    let http = client();
    for a in acked {
        let order: Value =
            http.get(format!("{address}/orders/{}", a.id)).send().await.unwrap().json().await.unwrap();
        if order["workflow"] != "driver" {
            continue;
        }
        let steps: &[&str] = match order["status"].as_str() {
            Some("reserved") => &["legs/ride/start", "complete"],
            Some("in_delivery") => &["complete"],
            _ => &[],
        };
        for step in steps {
            let r = http.post(format!("{address}/deliveries/{}/{step}", a.id)).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{step} of {} after the restart", a.id);
        }
    }
}

/// Units and timers, from the stopped node's store: every named unit is in
/// its pool or held by exactly one live order that names it, never both;
/// every ended order gave back what it held, once; every timer left belongs
/// to an order still at the status it is for.
/// What the units-and-timers check saw: rides that ended, orders expired.
#[derive(Debug, Default)]
pub struct Seen {
    pub rides_ended: usize,
    pub expired: usize,
}

pub fn check_units_and_timers(store: &Store, by_order: &BTreeMap<String, Vec<&Event>>) -> Seen {
    let mut seen = Seen::default();
    let orders: HashMap<String, Order> = text_keyed(store, "orders");
    let products: HashMap<String, Product> = text_keyed(store, "products");
    let mut held: BTreeMap<(String, String), OrderId> = BTreeMap::new();
    for (key, order) in raw(store, "units_held") {
        let mut parts = key.splitn(2, |b| *b == 0);
        let sku = String::from_utf8(parts.next().unwrap().to_vec()).unwrap();
        let unit = String::from_utf8(parts.next().unwrap().to_vec()).unwrap();
        held.insert((sku, unit), decode(&order).unwrap());
    }
    for ((sku, unit), id) in &held {
        let order = &orders[id.as_str()];
        let live = !order.status.is_terminal() && order.status != OrderStatus::Delivered;
        assert!(live, "{unit} of {sku} is held by {id}, which is {}", order.status);
        assert!(order.units.contains(unit), "{id} holds {unit} without naming it");
        assert!(!products[sku].units.contains(unit), "{unit} of {sku} is both free and held by {id}");
    }
    if let Some(pool) = products.get(POOL) {
        let mut all: BTreeSet<&str> = pool.units.iter().map(String::as_str).collect();
        all.extend(held.keys().filter(|(s, _)| s == POOL).map(|(_, u)| u.as_str()));
        assert_eq!(all, DRIVERS.into_iter().collect(), "the pool ends with exactly its drivers");
        assert_eq!(pool.stock as usize, pool.units.len(), "stock counts the free drivers");
    }
    for (id, events) in by_order {
        let took_units = events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::StockReserved { units, .. } if !units.is_empty()));
        let Some(order) = orders.get(id) else { continue }; // never placed: checked by check_store
        let ended = order.status.is_terminal() || order.status == OrderStatus::Delivered;
        let released = events.iter().filter(|e| matches!(e.kind, EventKind::StockReleased { .. })).count();
        seen.rides_ended += usize::from(took_units && ended);
        seen.expired += usize::from(order.reason == Some(fulfil::domain::CancelReason::Expired));
        if took_units && ended {
            assert_eq!(
                released, 1,
                "order {id} ended at {} and gave its units back {released} times",
                order.status
            );
        }
    }
    for (_, timer) in raw(store, "order_timers") {
        let timer: Value = timer_fields(&timer);
        let id = timer["order"].as_str().unwrap();
        let status = orders[id].status.as_str();
        assert_eq!(timer["status"], status, "a timer of {id} outlived its status");
    }
    seen
}

/// A timer's order and status: the first two fields of its record.
fn timer_fields(bytes: &[u8]) -> Value {
    let (order, status): (OrderId, OrderStatus) = decode_prefix(bytes);
    json!({"order": order.as_str(), "status": status.as_str()})
}

/// Decodes the first fields of a stored record as a tuple (bincode writes a
/// struct as its fields in order).
fn decode_prefix<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
    let config = bincode::config::standard();
    bincode::serde::decode_from_slice(&bytes[1..], config).expect("a stored record").0
}

fn raw(store: &Store, tree: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    store.raw_entries(tree).unwrap()
}

fn text_keyed<T: serde::de::DeserializeOwned>(store: &Store, tree: &str) -> HashMap<String, T> {
    raw(store, tree).into_iter().map(|(k, v)| (String::from_utf8(k).unwrap(), decode(&v).unwrap())).collect()
}
