//! A node running one shard of a cluster split into shards (as a sharded
//! `fulfil serve` runs each shard it leads): its orders' ids name its
//! shard, and an order drawing on another shard's products is refused
//! before anything is reserved or charged.

use crate::helpers::{assert_problem, order_body, spawn_app_with};
use fulfil::config::Settings;
use fulfil::domain::shard::Shards;
use fulfil::domain::{OrderId, Sku};
use reqwest::StatusCode;

const SHARDS: u32 = 4;

/// A SKU on `shard` of [`SHARDS`].
fn sku_on(shard: u32) -> String {
    let shards = Shards::new(SHARDS);
    (0..).map(|n| format!("sku-{n}")).find(|s| shards.of_sku(&Sku::parse(s).unwrap()) == shard).unwrap()
}

/// `settings` as the node that leads shard `index` runs them.
fn as_shard(settings: &mut Settings, index: u32) {
    settings.stream.shards = SHARDS;
    let mut shard = settings.for_shard(index);
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
