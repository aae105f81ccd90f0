//! Who may do what, over HTTP, on a node with keys (OWASP API1, API2,
//! API5): every request is by someone, each party takes only its workflow's
//! steps, and someone else's order is not found.

use crate::helpers::{spawn_app, spawn_app_with, TestApp};
use fulfil::auth::digest_hex;
use fulfil::config::KeySetting;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

/// Each key and the principal it stands for.
pub const KEYS: [(&str, &str); 11] = [
    ("kim-key", "customer:kim"),
    ("lee-key", "customer:lee"),
    ("seller-key", "seller"),
    ("hotel-key", "hotel"),
    ("shop-key", "shop"),
    ("customs-key", "customs"),
    ("d1-key", "driver:d1"),
    ("d2-key", "driver:d2"),
    ("op-key", "operator"),
    ("admin-key", "admin"),
    ("walker-key", "dog-walker"),
];

/// A node with [`KEYS`]. Its test client reads as the operator (who sees
/// everything), so that the helpers can wait for statuses; each test's
/// requests name their principal with [`who`].
pub async fn protected() -> TestApp {
    let mut app = spawn_app_with(|s| {
        s.auth.keys =
            KEYS.iter().map(|(k, p)| KeySetting { sha256: digest_hex(k), principal: p.to_string() }).collect()
    })
    .await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, "Bearer op-key".parse().unwrap());
    app.client = reqwest::Client::builder().default_headers(headers).build().unwrap();
    app
}

/// The key of `principal` in [`KEYS`].
pub fn key_of(principal: &str) -> &'static str {
    KEYS.iter().find(|(_, p)| *p == principal).map(|(k, _)| *k).expect("a known principal")
}

/// Requests made by one principal.
pub struct As<'a> {
    pub app: &'a TestApp,
    pub key: &'a str,
}

impl As<'_> {
    pub async fn get(&self, path: &str) -> Response {
        self.app.client.get(self.app.url(path)).bearer_auth(self.key).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> Response {
        let mut r = self.app.client.post(self.app.url(path)).bearer_auth(self.key);
        if let Some(body) = body {
            r = r.json(&body);
        }
        r.send().await.unwrap()
    }

    /// Places an order, asserting a 201; its id.
    pub async fn place(&self, body: Value) -> String {
        let r = self.post("/orders", Some(body.clone())).await;
        assert_eq!(r.status(), StatusCode::CREATED, "placing {body}");
        r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
    }
}

pub fn who<'a>(app: &'a TestApp, principal: &str) -> As<'a> {
    As { app, key: key_of(principal) }
}

fn shop_order(customer: &str) -> Value {
    json!({"customer": customer, "items": [{"sku": "MUG", "qty": 1}], "address": "Seoul", "payment": "bank_transfer"})
}

async fn problem(r: Response, status: StatusCode) -> Value {
    crate::helpers::assert_problem(r, status).await
}

#[tokio::test]
async fn a_request_without_a_known_key_is_401_and_the_scheme_is_any_case() {
    let app = protected().await;
    let anyone = reqwest::Client::new();
    let none = anyone.get(app.url("/products/MUG")).send().await.unwrap();
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    assert!(problem(none, StatusCode::UNAUTHORIZED).await["detail"].as_str().unwrap().contains("Bearer"));
    let wrong = anyone.get(app.url("/products/MUG")).bearer_auth("guess").send().await.unwrap();
    problem(wrong, StatusCode::UNAUTHORIZED).await;
    let lower = anyone.get(app.url("/products/MUG")).header("authorization", "bearer kim-key").send();
    assert_eq!(lower.await.unwrap().status(), StatusCode::NOT_FOUND, "authenticated; there is no MUG");
    let health: Value = anyone.get(app.url("/health/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["auth"], "keys");
    let open: Value = spawn_app().await.get("/health/ready").await.json().await.unwrap();
    assert_eq!(open["auth"], "open");
}

/// API1: a customer sees and acts on their own orders only, and cannot
/// tell someone else's from one that does not exist.
#[tokio::test]
async fn a_customer_sees_only_their_own_orders_and_anothers_are_not_found() {
    let app = protected().await;
    let seller = who(&app, "seller");
    let mug = json!({"sku": "MUG", "name": "Mug", "price": 1500, "stock": 5});
    assert_eq!(seller.post("/products", Some(mug)).await.status(), StatusCode::CREATED);
    let (kim, lee) = (who(&app, "customer:kim"), who(&app, "customer:lee"));
    let id = kim.place(shop_order("kim")).await;
    app.settle().await;
    assert_eq!(kim.get(&format!("/orders/{id}")).await.status(), StatusCode::OK);
    assert_eq!(kim.get(&format!("/status/{id}")).await.status(), StatusCode::OK);
    for path in [format!("/orders/{id}"), format!("/status/{id}"), format!("/deliveries/{id}")] {
        let r = lee.get(&path).await;
        assert_eq!(problem(r, StatusCode::NOT_FOUND).await["type"], "/problems/not-found", "{path}");
    }
    problem(lee.post(&format!("/orders/{id}/cancel"), None).await, StatusCode::NOT_FOUND).await;
    problem(lee.get("/status?customer=kim").await, StatusCode::FORBIDDEN).await;
    problem(lee.get("/notifications?customer=kim").await, StatusCode::FORBIDDEN).await;
    let placed_for_kim = lee.post("/orders", Some(shop_order("kim"))).await;
    let detail = problem(placed_for_kim, StatusCode::FORBIDDEN).await["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("for customer lee only"), "{detail}");
    assert_eq!(kim.get("/status?customer=kim").await.status(), StatusCode::OK);
    assert_eq!(who(&app, "operator").get(&format!("/status/{id}")).await.status(), StatusCode::OK);
    // Still kim's, untouched by lee.
    let order: Value = kim.get(&format!("/orders/{id}")).await.json().await.unwrap();
    assert_eq!(order["status"], "payment_pending");
}

/// API5: the customer cannot confirm her own deposit; the seller can.
#[tokio::test]
async fn only_the_seller_confirms_a_deposit_and_manages_the_catalog() {
    let app = protected().await;
    let mug = json!({"sku": "MUG", "name": "Mug", "price": 1500, "stock": 5});
    let kim = who(&app, "customer:kim");
    let refused = kim.post("/products", Some(mug.clone())).await;
    assert!(problem(refused, StatusCode::FORBIDDEN).await["detail"].as_str().unwrap().contains("seller"));
    assert_eq!(who(&app, "seller").post("/products", Some(mug)).await.status(), StatusCode::CREATED);
    let restock = who(&app, "operator").post("/products/MUG/restock", Some(json!({"qty": 1}))).await;
    assert_eq!(restock.status(), StatusCode::OK);
    let id = kim.place(shop_order("kim")).await;
    let own = kim.post(&format!("/payments/{id}/confirm"), None).await;
    let detail = problem(own, StatusCode::FORBIDDEN).await["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("confirm_deposit") && detail.contains("seller"), "{detail}");
    assert_eq!(
        kim.get(&format!("/orders/{id}")).await.json::<Value>().await.unwrap()["status"],
        "payment_pending"
    );
    let confirmed = who(&app, "seller").post(&format!("/payments/{id}/confirm"), None).await;
    assert_eq!(confirmed.status(), StatusCode::OK);
}

/// A driver accepts as himself (no `by`), and only he takes the ride: driver
/// d2 cannot start d1's ride; a body that names someone else is refused.
#[tokio::test]
async fn a_driver_acts_as_himself_and_cannot_take_another_drivers_ride() {
    let app = protected().await;
    let call = json!({"workflow": "taxi", "customer": "kim", "address": "Seoul station", "payment": "none"});
    let id = who(&app, "customer:kim").place(call).await;
    let (d1, d2) = (who(&app, "driver:d1"), who(&app, "driver:d2"));
    app.settle().await;
    let open: Value = d2.get("/status?workflow=taxi&status=placed").await.json().await.unwrap();
    assert_eq!(open["orders"][0]["order_id"], id.as_str(), "drivers see the open calls");
    let impostor = d2.post(&format!("/orders/{id}/accept"), Some(json!({"by": "driver:d1"}))).await;
    problem(impostor, StatusCode::FORBIDDEN).await;
    let accepted: Value = d1.post(&format!("/orders/{id}/accept"), None).await.json().await.unwrap();
    assert_eq!(accepted["accepted_by"], "driver:d1");
    app.wait_for_status(&id, "accepted").await;
    let stolen = d2.post(&format!("/deliveries/{id}/legs/ride/start"), None).await;
    assert!(problem(stolen, StatusCode::FORBIDDEN).await["detail"].as_str().unwrap().contains("driver:d1"));
    let seller = who(&app, "seller").post(&format!("/deliveries/{id}/legs/ride/start"), None).await;
    problem(seller, StatusCode::NOT_FOUND).await;
    assert_eq!(d1.post(&format!("/deliveries/{id}/legs/ride/start"), None).await.status(), StatusCode::OK);
    let customer_lists = who(&app, "customer:kim").get("/status?workflow=taxi&status=placed").await;
    problem(customer_lists, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn the_admin_api_is_for_the_admin_only() {
    let app = protected().await;
    problem(who(&app, "seller").get("/admin/dead-letters").await, StatusCode::FORBIDDEN).await;
    problem(who(&app, "operator").get("/admin/faults").await, StatusCode::FORBIDDEN).await;
    assert_eq!(who(&app, "admin").get("/admin/dead-letters").await.status(), StatusCode::OK);
}

/// Like Redis's protected mode: with no keys the node runs open, and so it
/// refuses to listen anywhere but on loopback, naming the setting.
#[tokio::test]
async fn an_open_node_refuses_to_listen_beyond_loopback_and_a_node_with_keys_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = crate::helpers::test_settings(dir.path());
    settings.http.bind = "0.0.0.0:0".into();
    let refused = fulfil::Application::build(settings.clone()).await.err().expect("refused");
    let message = refused.to_string();
    assert!(message.contains("auth.keys") && message.contains("0.0.0.0:0"), "{message}");
    settings.auth.keys = vec![KeySetting { sha256: digest_hex("k"), principal: "operator".into() }];
    let app = fulfil::Application::build(settings).await.expect("with keys it listens anywhere");
    assert!(!app.address().ip().is_loopback());
    app.node().shutdown().await;
}

/// Who did what is kept: each party's step is in the order's status view,
/// with the principal that took it.
#[tokio::test]
async fn the_status_view_says_who_took_each_step() {
    let app = protected().await;
    let mug = json!({"sku": "MUG", "name": "Mug", "price": 1500, "stock": 5});
    who(&app, "seller").post("/products", Some(mug)).await;
    let id = who(&app, "customer:kim").place(shop_order("kim")).await;
    assert_eq!(
        who(&app, "seller").post(&format!("/payments/{id}/confirm"), None).await.status(),
        StatusCode::OK
    );
    app.wait_for_status(&id, "in_delivery").await;
    let r = who(&app, "seller").post(&format!("/deliveries/{id}/legs/shipping/complete"), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    app.wait_for_status(&id, "delivered").await;
    let view: Value = who(&app, "customer:kim").get(&format!("/status/{id}")).await.json().await.unwrap();
    let actions: Vec<(String, String)> = view["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["step"].as_str().unwrap().to_owned(), a["by"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        actions,
        [("confirm_deposit".to_owned(), "seller".to_owned()), ("complete shipping".into(), "seller".into())]
    );

    let call = json!({"workflow": "taxi", "customer": "kim", "address": "Seoul station", "payment": "none"});
    let ride = who(&app, "customer:kim").place(call).await;
    who(&app, "driver:d1").post(&format!("/orders/{ride}/accept"), None).await;
    app.wait_for_status(&ride, "accepted").await;
    who(&app, "driver:d1").post(&format!("/deliveries/{ride}/legs/ride/start"), None).await;
    let view = app.wait_for_status(&ride, "in_delivery").await;
    let steps: Vec<&str> =
        view["actions"].as_array().unwrap().iter().map(|a| a["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["accept", "start ride"]);
    assert!(view["actions"].as_array().unwrap().iter().all(|a| a["by"] == "driver:d1"), "{view}");
}

/// A token from an identity provider is a principal too: verified (key,
/// issuer, audience, expiry) and held to the same rules as a key.
#[tokio::test]
async fn a_json_web_token_names_its_principal_over_http() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("jwt.secret");
    std::fs::write(&secret, b"the identity provider's shared secret").unwrap();
    let app = spawn_app_with(|s| {
        s.auth.jwt.algorithm = "HS256".into();
        s.auth.jwt.key_file = secret.display().to_string();
        s.auth.jwt.issuer = "https://id.example".into();
        s.auth.jwt.audience = "fulfil".into();
    })
    .await;
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 600;
    let claims = json!({"sub": "customer:kim", "iss": "https://id.example", "aud": "fulfil", "exp": exp});
    let key = EncodingKey::from_secret(b"the identity provider's shared secret");
    let kim = encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap();
    let r = app.client.get(app.url("/status?customer=kim")).bearer_auth(&kim).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.client.get(app.url("/status?customer=lee")).bearer_auth(&kim).send().await.unwrap();
    problem(r, StatusCode::FORBIDDEN).await;
    let forged =
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"guess")).unwrap();
    let r = app.client.get(app.url("/status?customer=kim")).bearer_auth(&forged).send().await.unwrap();
    problem(r, StatusCode::UNAUTHORIZED).await;
}

/// The embedding API holds its callers to the same rules when it is told
/// who they are.
#[tokio::test]
async fn the_embedding_api_acting_for_a_principal_follows_the_same_rules() {
    use fulfil::domain::access::Principal;
    use fulfil::NodeError;
    let app = spawn_app().await;
    app.add_product("MUG", 1500, 5).await;
    let node = &app.node;
    let kim = node.acting(Principal::parse("customer:kim").unwrap());
    let lee = node.acting(Principal::parse("customer:lee").unwrap());
    let request = serde_json::from_value(shop_order("kim")).unwrap();
    let receipt = kim.place_order(request, None).await.unwrap();
    let id = receipt.id.to_string();
    assert!(matches!(lee.order(&id).await, Err(NodeError::Refused(fulfil::error::Refused::NotFound { .. }))));
    assert!(matches!(
        kim.confirm_deposit(&id).await,
        Err(NodeError::Refused(fulfil::error::Refused::Forbidden(why))) if why.contains("seller")
    ));
    let seller = node.acting(Principal::parse("seller").unwrap());
    assert_eq!(seller.confirm_deposit(&id).await.unwrap().status.as_str(), "paid");
    assert_eq!(kim.order(&id).await.unwrap().id.as_str(), id);
}

/// The load generator runs against a node with keys, with an operator's
/// key; without one it is turned away at its first request.
#[tokio::test]
async fn the_load_generator_authenticates_with_a_key() {
    use fulfil::load::{run, LoadSpec};
    let app = protected().await;
    let spec = |key: Option<&str>| LoadSpec {
        url: app.address.clone(),
        clients: 2,
        duration: std::time::Duration::from_secs(5),
        rate: None,
        max_requests: 20,
        timeout: std::time::Duration::from_secs(5),
        ids_out: None,
        watch_pid: None,
        key: key.map(str::to_owned),
        skus: 1,
    };
    let report = run(spec(Some("op-key"))).await.unwrap();
    assert_eq!(report.by_status.get(&201), Some(&20), "{report:?}");
    assert!(run(spec(None)).await.is_err(), "no key: its setup is refused");
}

/// A customer subscribes to its own orders only, a party to its role's; each
/// sees and drops only its own subscriptions.
#[tokio::test]
async fn parties_and_customers_subscribe_for_themselves_only() {
    let app = protected().await;
    let kim = who(&app, "customer:kim");
    let mine = kim.post("/subscriptions", Some(json!({"url": "https://hooks.example.com/kim"}))).await;
    assert_eq!(mine.status(), StatusCode::CREATED);
    let mine: Value = mine.json().await.unwrap();
    assert_eq!((mine["customer"].as_str(), mine["owner"].as_str()), (Some("kim"), Some("customer:kim")));
    let others = kim
        .post("/subscriptions", Some(json!({"url": "https://hooks.example.com/x", "customer": "lee"})))
        .await;
    problem(others, StatusCode::FORBIDDEN).await;
    let hotel = who(&app, "hotel");
    let r = hotel
        .post("/subscriptions", Some(json!({"url": "https://hooks.example.com/h", "workflow": "hotel"})))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["party"], "hotel");
    let not_its = hotel
        .post("/subscriptions", Some(json!({"url": "https://hooks.example.com/h", "workflow": "taxi"})))
        .await;
    problem(not_its, StatusCode::FORBIDDEN).await;
    let listed: Value = kim.get("/subscriptions").await.json().await.unwrap();
    assert_eq!(listed["subscriptions"].as_array().unwrap().len(), 1, "kim sees hers only");
    let all: Value = who(&app, "operator").get("/subscriptions").await.json().await.unwrap();
    assert_eq!(all["subscriptions"].as_array().unwrap().len(), 2);
    let id = mine["id"].as_u64().unwrap();
    let r = app
        .client
        .delete(app.url(&format!("/subscriptions/{id}")))
        .bearer_auth("lee-key")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND).await;
    let r = app
        .client
        .delete(app.url(&format!("/subscriptions/{id}")))
        .bearer_auth("kim-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

/// A customer or a party cannot make the node call into its own network
/// (server-side request forgery): their receivers must be public; the
/// operator's may be anywhere.
#[tokio::test]
async fn only_the_operator_subscribes_receivers_inside_the_network() {
    let app = protected().await;
    let kim = who(&app, "customer:kim");
    for internal in
        ["http://127.0.0.1:9/kim", "http://localhost/x", "http://169.254.169.254/latest", "http://[::1]/"]
    {
        let refused = kim.post("/subscriptions", Some(json!({"url": internal}))).await;
        let problem = problem(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(problem["detail"].as_str().unwrap().contains("public address"), "{internal}: {problem}");
    }
    let hotel = who(&app, "hotel");
    let refused = hotel.post("/subscriptions", Some(json!({"url": "http://10.0.0.5/h"}))).await;
    problem(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
    let operator = who(&app, "operator");
    let ok = operator.post("/subscriptions", Some(json!({"url": "http://127.0.0.1:9/ops"}))).await;
    assert_eq!(ok.status(), StatusCode::CREATED);
    let listed: Value = operator.get("/subscriptions").await.json().await.unwrap();
    assert_eq!(listed["subscriptions"].as_array().unwrap().len(), 1, "nothing refused was kept");
}
