//! Embedding fulfil in an application on a plain `#[tokio::main]`.
//!
//! The application starts a node on its own data directory, places and
//! follows an order through typed calls, mounts the node's HTTP API into its
//! own actix-web `App` next to its own routes, and shuts everything down.
//!
//! Run it with `cargo run --example embedded`; `cargo test` runs it too.

use actix_web::{web, App, HttpServer};
use fulfil::{ItemRequest, NewProduct, Node, OrderRequest, Settings};
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // A real application would keep its data in a fixed place.
    let data = tempfile::tempdir()?;
    let mut settings = Settings::default();
    settings.store.path = data.path().to_path_buf();
    let node = Node::start(settings).await?;

    // Typed calls: no HTTP involved.
    node.add_product(NewProduct {
        sku: "TEA".into(),
        name: "Green tea".into(),
        price: 4200,
        stock: Some(10),
        units: vec![],
    })
    .await?;
    let order = OrderRequest {
        customer: "park".into(),
        items: vec![ItemRequest { sku: "TEA".into(), qty: 3 }],
        address: "12 Jongno, Seoul".into(),
        payment: "card".into(),
        card: Some("4111 1111 1111 1111".into()),
        ..OrderRequest::default() // workflow, details, from/to
    };
    let receipt = node.place_order(order, Some("example-order-1".into())).await?;
    println!("placed {} ({}), total {}", receipt.id, receipt.status, receipt.total.minor());
    let id = receipt.id.to_string();
    wait_until(|| async { node.status(&id).await.is_ok_and(|r| r.view.status.as_str() == "in_delivery") })
        .await?;
    println!("{id} is in delivery; stock left: {}", node.product("TEA").await?.stock);

    // The node's HTTP API inside the application's own App.
    let api = node.clone();
    let server = HttpServer::new(move || {
        App::new()
            .route("/hello", web::get().to(|| async { "hello from the host application" }))
            .configure(fulfil::http::routes(api.clone()))
    })
    .workers(1)
    .bind("127.0.0.1:0")?;
    let address = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);

    let hello = reqwest::get(format!("http://{address}/hello")).await?.text().await?;
    let view: serde_json::Value = reqwest::get(format!("http://{address}/status/{id}")).await?.json().await?;
    println!("GET /hello -> {hello}; GET /status/{id} -> {}", view["status"]);
    if view["status"] != "in_delivery" || hello != "hello from the host application" {
        return Err(format!("unexpected answers: {hello:?}, {view}").into());
    }

    handle.stop(true).await;
    node.shutdown().await;
    println!("node shut down cleanly");
    Ok(())
}

/// Polls `check` until it holds, for at most five seconds.
async fn wait_until<F, Fut>(check: F) -> Result<(), Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        if Instant::now() > deadline {
            return Err("the order did not reach in_delivery within 5 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedding_example_runs_end_to_end() {
        super::main().expect("the example succeeds");
    }
}
