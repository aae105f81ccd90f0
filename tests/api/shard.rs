//! A node running one shard of a cluster split into shards (as a sharded
//! `fulfil serve` runs each shard it leads): its orders' ids name its
//! shard, and an order drawing on another shard's products is refused
//! before anything is reserved or charged. And the router of a node's
//! public port over such shard nodes: a webhook subscription is kept by
//! every shard under one id, or by none.

use crate::helpers::{assert_problem, order_body, spawn_app, spawn_app_with, TestApp};
use fulfil::config::Settings;
use fulfil::domain::shard::Shards;
use fulfil::domain::{OrderId, Sku};
use reqwest::StatusCode;
use serde_json::{json, Value};

const SHARDS: u32 = 4;
/// The hop key of the cluster [`router_over`] routes for.
const HOP_KEY: &str = "0123abcd";

/// A SKU on `shard` of [`SHARDS`].
fn sku_on(shard: u32) -> String {
    let shards = Shards::new(SHARDS);
    (0..).map(|n| format!("sku-{n}")).find(|s| shards.of_sku(&Sku::parse(s).unwrap()) == shard).unwrap()
}

/// `settings` as the node that leads shard `index` runs them.
fn as_shard(settings: &mut Settings, index: u32) {
    as_shard_of(settings, index, SHARDS);
}

fn as_shard_of(settings: &mut Settings, index: u32, shards: u32) {
    settings.stream.shards = shards;
    let mut shard = settings.for_shard(index, HOP_KEY);
    shard.http.bind = settings.http.bind.clone();
    shard.store.path = settings.store.path.clone();
    *settings = shard;
}

#[tokio::test]
async fn a_shards_orders_have_ids_of_that_shard() {
    let app = spawn_app_with(|s| as_shard(s, 2)).await;
    let sku = sku_on(2);
    app.add_product(&sku, 1000, 100).await;
    for n in 0..20 {
        let id = app.place(&order_body(&format!("c{n}"), &sku, 1, "card")).await;
        assert_eq!(Shards::new(SHARDS).of_order(&OrderId::parse(&id).unwrap()), 2, "{id}");
    }
}

#[tokio::test]
async fn an_order_for_another_shards_products_is_refused_and_changes_nothing() {
    let app = spawn_app_with(|s| as_shard(s, 1)).await;
    let (here, there) = (sku_on(1), sku_on(3));
    app.add_product(&here, 1000, 5).await;
    // As if the product were here too: it must still not be sold here.
    app.add_product(&there, 1000, 5).await;
    let r = app.post_json("/orders", &order_body("alice", &there, 1, "card")).await;
    let problem = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("held on shard 3, not on shard 1"), "{detail}");
    assert_eq!(app.stock(&there).await, 5, "nothing reserved");
    let listed = app.get("/status?customer=alice").await.json::<serde_json::Value>().await.unwrap();
    assert_eq!(listed["orders"].as_array().unwrap().len(), 0, "{listed}");
}

/// A node's public port over `shards`, each led here (as the router of a
/// sharded `fulfil serve` is): its URL.
fn router_over(shards: &[&TestApp]) -> String {
    use fulfil::http::forward::router::{shard_routes, ShardMap};
    let map = ShardMap::new(
        Shards::new(shards.len() as u32),
        std::sync::Arc::new(Settings::default().workflow_rules()),
        Vec::new(),
    );
    map.set_hop_key(HOP_KEY.to_owned());
    for (k, shard) in shards.iter().enumerate() {
        map.group(k as u32).set_here(Some(shard.address.clone()));
    }
    let server =
        actix_web::HttpServer::new(move || actix_web::App::new().configure(shard_routes(map.clone())))
            .workers(1)
            .bind("127.0.0.1:0")
            .unwrap();
    let url = format!("http://{}", server.addrs()[0]);
    tokio::spawn(server.run());
    url
}

/// The (id, url) of each subscription `shard` keeps.
async fn subscriptions(shard: &TestApp) -> Vec<(u64, String)> {
    let listed: Value = shard.get("/subscriptions").await.json().await.unwrap();
    let each = |s: &Value| (s["id"].as_u64().unwrap(), s["url"].as_str().unwrap().to_owned());
    listed["subscriptions"].as_array().unwrap().iter().map(each).collect()
}

#[tokio::test]
async fn a_subscription_is_kept_by_every_shard_under_the_id_the_first_gave_it() {
    let (first, second) =
        (spawn_app_with(|s| as_shard_of(s, 0, 2)).await, spawn_app_with(|s| as_shard_of(s, 1, 2)).await);
    // The second shard's ids run ahead of the first's.
    let own = second.post_json("/subscriptions", &json!({"url": "https://hooks.example.com/own"})).await;
    assert_eq!(own.status(), StatusCode::CREATED);
    let own = own.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    assert_eq!(
        second.client.delete(second.url(&format!("/subscriptions/{own}"))).send().await.unwrap().status(),
        204
    );
    let router = router_over(&[&first, &second]);
    let client = reqwest::Client::new();
    let hook = json!({"url": "https://hooks.example.com/all"});
    let r = client.post(format!("{router}/subscriptions")).json(&hook).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/subscriptions/"));
    let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    let all = (id, "https://hooks.example.com/all".to_owned());
    assert_eq!(subscriptions(&first).await, std::slice::from_ref(&all));
    assert_eq!(
        subscriptions(&second).await,
        std::slice::from_ref(&all),
        "the second shard keeps it under the first's id"
    );
    let r = client.delete(format!("{router}/subscriptions/{id}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(subscriptions(&first).await, []);
    assert!(!subscriptions(&second).await.contains(&all));
}

#[tokio::test]
async fn a_subscription_a_shard_cannot_take_is_kept_by_none() {
    let first = spawn_app_with(|s| as_shard_of(s, 0, 2)).await;
    let second = spawn_app_with(|s| as_shard_of(s, 1, 2)).await;
    let router = router_over(&[&first, &second]);
    second.stop().await;
    let r = reqwest::Client::new()
        .post(format!("{router}/subscriptions"))
        .json(&json!({"url": "https://hooks.example.com/all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(subscriptions(&first).await, [], "the first dropped it again");
}

#[tokio::test]
async fn only_a_shard_takes_a_subscriptions_id_from_its_router() {
    let given = |app: &TestApp| {
        app.client
            .post(app.url("/subscriptions"))
            .header("fulfil-subscription-id", "4242")
            .json(&json!({"url": "https://hooks.example.com/x"}))
            .send()
    };
    let node = spawn_app().await;
    let made: Value = given(&node).await.unwrap().json().await.unwrap();
    assert_ne!(made["id"], 4242, "a node that is no shard makes its own ids");
    let shard = spawn_app_with(|s| as_shard_of(s, 0, 2)).await;
    let made: Value = given(&shard).await.unwrap().json().await.unwrap();
    assert_eq!(made["id"], 4242, "a shard takes it from this machine");
    assert_eq!(given(&shard).await.unwrap().status(), StatusCode::CREATED, "the same again: a retry");
    let other = shard
        .client
        .post(shard.url("/subscriptions"))
        .header("fulfil-subscription-id", "4242")
        .json(&json!({"url": "https://hooks.example.com/other"}))
        .send()
        .await
        .unwrap();
    assert_problem(other, StatusCode::CONFLICT).await;
    assert_eq!(
        subscriptions(&shard).await,
        [(4242, "https://hooks.example.com/x".to_owned())],
        "never replaced"
    );
}

/// A shard's port is its router's: any process on the machine can reach
/// it, so without the cluster's hop key a request is refused (403
/// `not-routed`) and changes nothing.
#[tokio::test]
async fn a_shards_port_takes_requests_from_its_router_only() {
    let shard = spawn_app_with(|s| as_shard(s, 1)).await;
    let sku = sku_on(1);
    let direct = reqwest::Client::new();
    for key in [None, Some("guessed"), Some(""), Some(&HOP_KEY[1..])] {
        let mut post =
            direct.post(shard.url("/products")).json(&json!({"sku": sku, "name": "Tea", "price": 1000}));
        let mut get = direct.get(shard.url("/status?customer=alice")).header("X-Client-Id", "someone-else");
        if let Some(key) = key {
            (post, get) = (post.header("fulfil-hop", key), get.header("fulfil-hop", key));
        }
        for answer in [post.send().await.unwrap(), get.send().await.unwrap()] {
            let problem = assert_problem(answer, StatusCode::FORBIDDEN).await;
            assert_eq!(problem["type"], "/problems/not-routed", "hop key {key:?}: {problem}");
        }
    }
    let r = shard.get(&format!("/products/{sku}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "no product was added");
    shard.add_product(&sku, 1000, 3).await;
    assert_eq!(shard.stock(&sku).await, 3, "its router's requests are served");
}

/// A client's own routing marks (as a router sends them on to another
/// node) are not believed: the order goes to its products' shard. With
/// the cluster's hop key, they are (the shard refuses another's lines).
#[tokio::test]
async fn a_clients_routing_marks_are_not_believed_without_the_clusters_hop_key() {
    let shards =
        [spawn_app_with(|s| as_shard_of(s, 0, 2)).await, spawn_app_with(|s| as_shard_of(s, 1, 2)).await];
    let on_first = |n: u32| Shards::new(2).of_sku(&Sku::parse(&format!("sku-{n}")).unwrap()) == 0;
    let sku = format!("sku-{}", (0..).find(|n| on_first(*n)).unwrap());
    shards[0].add_product(&sku, 1000, 10).await;
    let router = router_over(&[&shards[0], &shards[1]]);
    let place = |hop: Option<&str>| {
        let mut post = reqwest::Client::new()
            .post(format!("{router}/orders"))
            .header("fulfil-forwarded", "1")
            .header("fulfil-shard", "1")
            .json(&order_body("alice", &sku, 1, "card"));
        if let Some(hop) = hop {
            post = post.header("fulfil-hop", hop);
        }
        post.send()
    };
    for forged in [None, Some("guessed"), Some("")] {
        let r = place(forged).await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "marks with hop key {forged:?} steered the order");
    }
    let r = place(Some(HOP_KEY)).await.unwrap();
    let problem = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(problem["detail"].as_str().unwrap().contains("not on shard 1"), "{problem}");
    assert_eq!(
        shards[1].get("/status?customer=alice").await.json::<Value>().await.unwrap()["orders"],
        json!([])
    );
}

/// Who the caller is, for its rate on a shard: the router that took the
/// request decides (a caller's own `X-Client-Id` is not believed from an
/// address that is no trusted proxy), and a router another node's sent it
/// on to (with the hop key) keeps what that one decided, so callers
/// forwarded by one node are not counted as one.
#[tokio::test]
async fn a_shard_counts_each_callers_rate_as_the_router_that_took_it_says() {
    let limited = |s: &mut Settings, k| {
        as_shard_of(s, k, 2);
        (s.http.rate_per_client, s.http.burst_per_client) = (1, 1);
    };
    let shards = [spawn_app_with(|s| limited(s, 0)).await, spawn_app_with(|s| limited(s, 1)).await];
    let router = router_over(&[&shards[0], &shards[1]]);
    let sku = "sku-0";
    let shard = Shards::new(2).of_sku(&Sku::parse(sku).unwrap()).to_string();
    let ask = |caller: &str, hopped: bool| {
        let get =
            reqwest::Client::new().get(format!("{router}/products/{sku}")).header("X-Client-Id", caller);
        let get = match hopped {
            true => get
                .header("fulfil-forwarded", "1")
                .header("fulfil-hop", HOP_KEY)
                .header("fulfil-shard", &shard),
            false => get,
        };
        async move { get.send().await.unwrap().status() }
    };
    assert_eq!(ask("a", false).await, StatusCode::NOT_FOUND);
    assert_eq!(ask("b", false).await, StatusCode::TOO_MANY_REQUESTS, "b is a's address, whatever it says");
    assert_eq!(ask("c", true).await, StatusCode::NOT_FOUND);
    assert_eq!(ask("d", true).await, StatusCode::NOT_FOUND, "another caller, as the first router said");
    assert_eq!(ask("c", true).await, StatusCode::TOO_MANY_REQUESTS, "c again");
}
