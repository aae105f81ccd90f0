//! The live stream: Server-Sent Events of a customer's notifications as
//! they happen, read with a real HTTP client, resumed with Last-Event-ID.

use crate::helpers::{order_body, spawn_app};
use std::time::Duration;

/// Reads SSE frames from `r` until `n` have arrived: their ids, events and
/// data.
async fn frames(r: &mut reqwest::Response, n: usize) -> Vec<(u64, String, String)> {
    let mut text = String::new();
    let mut got = Vec::new();
    while got.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(5), r.chunk()).await;
        let chunk = chunk.expect("a frame within 5 s").unwrap().expect("the stream goes on");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                frame
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_default()
            };
            got.push((field("id:").parse().unwrap(), field("event:"), field("data:")));
        }
    }
    got
}

#[tokio::test]
async fn a_live_stream_follows_a_customers_orders_and_resumes_from_last_event_id() {
    let app = spawn_app().await;
    app.add_product("MUG", 1500, 5).await;
    let earlier = app.place(&order_body("kim", "MUG", 1, "bank_transfer")).await;
    app.wait_for_status(&earlier, "payment_pending").await;
    let mut live = app.get("/events?customer=kim").await;
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    let backlog = frames(&mut live, 2).await;
    assert_eq!(backlog.iter().map(|(_, e, _)| e.as_str()).collect::<Vec<_>>(), ["placed", "payment_pending"]);

    app.place(&order_body("lee", "MUG", 1, "bank_transfer")).await;
    let id = app.place(&order_body("kim", "MUG", 1, "bank_transfer")).await;
    let now = frames(&mut live, 2).await;
    assert_eq!(
        now.iter().map(|(_, e, _)| e.as_str()).collect::<Vec<_>>(),
        ["placed", "payment_pending"],
        "kim's only"
    );
    assert!(now[0].0 > backlog[1].0);
    drop(live);

    // Reconnected after the first of the new ones: the second comes again,
    // then what happens next.
    let resume =
        app.client.get(app.url("/events?customer=kim")).header("Last-Event-ID", now[0].0.to_string());
    let mut resumed = resume.send().await.unwrap();
    assert_eq!(frames(&mut resumed, 1).await, [now[1].clone()]);
    app.post(&format!("/payments/{id}/confirm")).await;
    let next = frames(&mut resumed, 1).await;
    assert_eq!(next[0].1, "paid");
}

/// A party follows its workflow's work live: the taxi's new calls, and
/// nothing of other workflows.
#[tokio::test]
async fn a_driver_follows_new_taxi_calls_live() {
    let app = spawn_app().await;
    app.add_product("MUG", 1500, 5).await;
    let mut calls = app.get("/events?workflow=taxi").await;
    assert_eq!(calls.status(), reqwest::StatusCode::OK);
    app.place(&order_body("kim", "MUG", 1, "bank_transfer")).await;
    let call = serde_json::json!({"workflow": "taxi", "customer": "yoon", "address": "Seoul station", "payment": "none"});
    let id = app.place(&call).await;
    let got = frames(&mut calls, 1).await;
    assert_eq!(got[0].1, "placed");
    assert!(got[0].2.contains(&id), "the call, and not the shop's order: {}", got[0].2);
    let neither = app.get("/events").await;
    crate::helpers::assert_problem(neither, reqwest::StatusCode::BAD_REQUEST).await;
}

/// A driver follows every call of its role (the taxi's and the driver
/// service's) and, reconnecting with the last event it saw, first gets the
/// calls it missed, read from the log, then the rest live.
#[tokio::test]
async fn a_driver_follows_its_roles_calls_and_resumes_where_it_left_off() {
    let app = spawn_app().await;
    app.add_product("MUG", 1500, 5).await;
    let call = |who: &str| serde_json::json!({"workflow": "taxi", "customer": who, "address": "Seoul station", "payment": "none"});
    let mut calls = app.get("/events?party=driver").await;
    assert_eq!(calls.status(), reqwest::StatusCode::OK);
    let first = app.place(&call("yoon")).await;
    let seen = frames(&mut calls, 1).await;
    assert!(seen[0].2.contains(&first), "{seen:?}");
    drop(calls);

    // Missed while away: two calls, and a shop order that is not the
    // drivers' business.
    let missed = [app.place(&call("han")).await, app.place(&call("oh")).await];
    app.place(&order_body("kim", "MUG", 1, "bank_transfer")).await;
    app.settle().await;
    let resume =
        app.client.get(app.url("/events?party=driver")).header("Last-Event-ID", seen[0].0.to_string());
    let mut resumed = resume.send().await.unwrap();
    let backlog = frames(&mut resumed, 2).await;
    for ((_, event, data), id) in backlog.iter().zip(&missed) {
        assert_eq!(event, "placed");
        assert!(data.contains(id.as_str()), "{data} is {id}");
    }
    let next = app.place(&call("moon")).await;
    let live = frames(&mut resumed, 1).await;
    assert!(live[0].2.contains(&next) && live[0].0 > backlog[1].0, "{live:?}");

    let nobody = app.get("/events?party=nobody").await;
    crate::helpers::assert_problem(nobody, reqwest::StatusCode::NOT_FOUND).await;
    let both = app.get("/events?party=driver&workflow=taxi").await;
    crate::helpers::assert_problem(both, reqwest::StatusCode::BAD_REQUEST).await;
}
