//! The OpenAPI document: valid OpenAPI 3.1 (openapi-spec-validator),
//! every route it lists is served and every route served is in it, and
//! real answers, errors included, match the schemas it gives them
//! (jsonschema). The document is generated from the handlers
//! (`src/http/openapi.rs`), so these tests keep the annotations honest.

use crate::helpers::{order_body, spawn_app_with, TestApp};
use crate::tools;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};

const TOKEN: &str = "openapi-admin-token";

async fn app() -> TestApp {
    spawn_app_with(|s| s.admin.token = TOKEN.into()).await
}

async fn document(app: &TestApp) -> Value {
    let r = app.get("/openapi.json").await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// Each (method, path template) the document lists.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.push((method.clone(), path.clone()));
        }
    }
    ops.sort();
    ops
}

fn validate_spec(file: &std::path::Path) -> std::process::Output {
    Command::new(tools::tool("openapi-spec-validator")).arg(file).output().unwrap()
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1_and_a_broken_one_is_not() {
    let app = app().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let checked = validate_spec(&file);
    let said =
        String::from_utf8_lossy(&checked.stdout).into_owned() + &String::from_utf8_lossy(&checked.stderr);
    assert!(checked.status.success(), "{said}");

    // The validator is not a formality: a response without a description fails it.
    let mut broken = doc.clone();
    broken["paths"]["/orders"]["post"]["responses"]["201"].as_object_mut().unwrap().remove("description");
    std::fs::write(&file, broken.to_string()).unwrap();
    assert!(!validate_spec(&file).status.success());

    // Operation ids are unique (generated clients name methods by them).
    let mut ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().unwrap())
        .collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "operation ids repeat");
}

/// A concrete path for a template: every `{param}` filled in.
fn concrete(template: &str) -> String {
    let mut path = String::new();
    for segment in template.split('/').skip(1) {
        path.push('/');
        path.push_str(if segment.starts_with('{') { "1" } else { segment });
    }
    path
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let app = app().await;
    let doc = document(&app).await;
    for (method, template) in operations(&doc) {
        // Ask for no stream to be held open.
        if template == "/events" {
            continue;
        }
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = app.client.request(method.clone(), app.url(&concrete(&template))).send().await.unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        // The app's default service answers a path no route matches.
        assert!(
            !body.contains("no route for"),
            "{method} {template} is documented but not served: {status} {body}"
        );
    }
    let r = app.client.get(app.url("/events?customer=nobody")).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
}

#[tokio::test]
async fn a_served_path_asked_with_another_method_is_405_with_the_methods_it_takes() {
    let app = app().await;
    for (method, path, allow) in [
        (Method::PUT, "/orders/ord-1", "GET"),
        (Method::DELETE, "/orders", "POST"),
        (Method::GET, "/orders/ord-1/cancel", "POST"),
        (Method::PATCH, "/subscriptions", "GET, POST"),
        (Method::POST, "/health/ready", "GET"),
    ] {
        let r = app.client.request(method.clone(), app.url(path)).send().await.unwrap();
        assert_eq!(r.headers().get("allow").map(|v| v.to_str().unwrap().to_owned()), Some(allow.to_owned()));
        let problem = crate::helpers::assert_problem(r, StatusCode::METHOD_NOT_ALLOWED).await;
        assert_eq!(problem["type"], "/problems/method-not-allowed", "{method} {path}");
    }
    // A path nobody serves is still 404.
    let r = app.client.put(app.url("/nothing/here")).send().await.unwrap();
    crate::helpers::assert_problem(r, StatusCode::NOT_FOUND).await;
}

/// The routes the source registers: every handler carries an actix route
/// attribute (`#[get("/…")]`), which utoipa-actix-web needs to collect it;
/// a route registered another way (`.route(…)`) would escape the document,
/// so there is none but the page that renders it.
fn routes_in_source() -> Vec<(String, String)> {
    let mut routes = Vec::new();
    let dir = tools::root().join("src/http");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().map(str::trim) {
            for method in ["get", "post", "put", "patch", "delete"] {
                if let Some(rest) = line.strip_prefix(&format!("#[{method}(\"")) {
                    let route = rest.split('"').next().unwrap();
                    routes.push((method.to_owned(), route.to_owned()));
                }
            }
            let registers_by_hand = line.contains(".route(") || line.contains("web::resource(");
            assert!(
                !registers_by_hand || line.contains("cfg.route(DOCS"),
                "{} registers a route the document cannot see: {line}",
                path.display()
            );
        }
    }
    routes.sort();
    // A failover follower answers the node's health paths itself
    // (`src/http/forward.rs`): the same routes, once in the document.
    routes.dedup();
    routes
}

#[tokio::test]
async fn every_route_served_is_documented() {
    let app = app().await;
    let doc = document(&app).await;
    let documented = operations(&doc);
    let served = routes_in_source();
    assert!(served.len() >= 40, "{served:?}");
    assert_eq!(served, documented, "the handlers and the document differ");
    // The page that renders the document is served, and fetches nothing
    // from elsewhere.
    let r = app.get("/docs/").await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("swagger-ui-bundle.js"), "{page}");
    assert!(!page.contains("https://"), "the page loads nothing from the internet: {page}");
    let r = app.get("/docs/swagger-initializer.js").await;
    let initializer = r.text().await.unwrap();
    assert!(initializer.contains("/openapi.json"), "{initializer}");
    assert!(initializer.contains(r#""validatorUrl": "none""#), "no online validator: {initializer}");
}

/// schemathesis generates requests from the document (every operation,
/// edge values, wrong methods, sequences) and checks each answer: never a
/// 5xx, a status, content type, headers and body as documented, 405 for a
/// method a path is not served with. Requests the document allows but the
/// domain refuses (an order for an unknown product) are answered 4xx and
/// are not counted against it: the document cannot state every rule.
#[tokio::test]
async fn generated_requests_get_no_server_error_and_only_documented_answers() {
    let app = spawn_app_with(|s| {
        s.admin.token = TOKEN.into();
        s.http.rate_per_client = 0;
    })
    .await;
    let url = app.url("/openapi.json");
    // Its caches go into the directory it runs in: a temporary one.
    let scratch = tempfile::tempdir().unwrap();
    let here = scratch.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(tools::tool("schemathesis"))
            .current_dir(here)
            .args(["run", &url, "--checks", "all", "--exclude-checks"])
            .arg("positive_data_acceptance,negative_data_rejection,ignored_auth")
            // A stream stays open; every other route is generated for.
            // One worker: schemathesis's threads trip a CPython 3.11 bug
            // (compiling in two threads at once fails).
            .args(["--exclude-path", "/events", "--max-examples", "25", "--seed", "1", "--workers", "1"])
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "schemathesis found answers the document does not allow:\n{said}");
    assert!(said.contains(" passed"), "{said}");
}

/// Answers seen, with the template of the path they answered.
struct Answers<'a> {
    app: &'a TestApp,
    seen: Vec<Value>,
}

impl Answers<'_> {
    /// Sends a request (as the admin when `admin`), records the answer
    /// and returns its status and body.
    async fn send(
        &mut self,
        method: Method,
        template: &str,
        path: &str,
        body: Option<Value>,
        admin: bool,
    ) -> (StatusCode, Value) {
        let mut req = self.app.client.request(method.clone(), self.app.url(path));
        if let Some(body) = body {
            req = req.json(&body);
        }
        if admin {
            req = req.bearer_auth(TOKEN);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let content_type =
            r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let text = r.text().await.unwrap();
        let body: Value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
        if !text.is_empty() {
            self.seen.push(json!({
                "method": method.as_str().to_lowercase(),
                "path": template,
                "status": status.as_u16(),
                "content_type": content_type,
                "body": body,
            }));
        }
        (status, body)
    }

    async fn get(&mut self, template: &str, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, template, path, None, false).await
    }

    async fn post(&mut self, template: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.send(Method::POST, template, path, body, false).await
    }

    async fn admin(&mut self, method: Method, template: &str, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self.send(method, template, path, body, true).await;
        assert!(status.is_success(), "{template}: {status} {body}");
        body
    }
}

#[tokio::test]
async fn answers_match_the_schemas_the_document_gives_them() {
    let app = app().await;
    let doc = document(&app).await;
    let mut a = Answers { app: &app, seen: Vec::new() };

    // A shop order through its life, and the catalog.
    let mug = json!({"sku": "MUG", "name": "Mug", "price": 12000, "stock": 5});
    assert_eq!(a.post("/products", "/products", Some(mug)).await.0, StatusCode::CREATED);
    a.get("/products/{sku}", "/products/MUG").await;
    a.post("/products/{sku}/restock", "/products/MUG/restock", Some(json!({"qty": 3}))).await;
    let (status, receipt) =
        a.post("/orders", "/orders", Some(order_body("kim", "MUG", 1, "bank_transfer"))).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = receipt["id"].as_str().unwrap().to_owned();
    a.get("/orders/{id}", &format!("/orders/{id}")).await;
    a.post("/payments/{order_id}/confirm", &format!("/payments/{id}/confirm"), None).await;
    app.wait_for_status(&id, "in_delivery").await;
    a.get("/status/{order_id}", &format!("/status/{id}")).await;
    a.get("/status", "/status?customer=kim").await;
    a.get("/status", "/status?workflow=shop&status=in_delivery&limit=1").await;
    a.get("/deliveries/{order_id}", &format!("/deliveries/{id}")).await;
    a.post("/deliveries/{order_id}/complete", &format!("/deliveries/{id}/complete"), None).await;
    app.wait_for_status(&id, "delivered").await;
    a.post("/orders/{id}/receipt", &format!("/orders/{id}/receipt"), None).await;
    app.settle().await;
    a.get("/notifications", "/notifications?customer=kim").await;

    // A hotel's rooms, a booking it accepts and one it turns down.
    let rooms = json!({"sku": "deluxe", "name": "Deluxe", "price": 180000, "units": ["r1", "r2"]});
    a.post("/products", "/products", Some(rooms)).await;
    a.get("/products/{sku}/availability", "/products/deluxe/availability?from=2027-03-01&to=2027-03-03")
        .await;
    a.post("/products/{sku}/units/{unit}/out-of-service", "/products/deluxe/units/r2/out-of-service", None)
        .await;
    a.post("/products/{sku}/units/{unit}/in-service", "/products/deluxe/units/r2/in-service", None).await;
    let booking = |customer: &str| {
        json!({"workflow": "hotel", "customer": customer, "items": [{"sku": "deluxe", "qty": 1}],
               "address": "Seoul", "payment": "card", "card": "4111 1111 1111 1111",
               "from": "2027-03-01", "to": "2027-03-03", "details": {"guests": 2}})
    };
    let (_, first) = a.post("/orders", "/orders", Some(booking("lee"))).await;
    let (_, second) = a.post("/orders", "/orders", Some(booking("park"))).await;
    let (first, second) = (first["id"].as_str().unwrap(), second["id"].as_str().unwrap());
    app.wait_for_status(first, "reserved").await;
    app.wait_for_status(second, "reserved").await;
    a.post("/orders/{id}/accept", &format!("/orders/{first}/accept"), None).await;
    let reject = json!({"reason": "closed for repairs"});
    a.post("/orders/{id}/reject", &format!("/orders/{second}/reject"), Some(reject)).await;

    // Problems.
    a.get("/orders/{id}", "/orders/no-such-order").await;
    a.post("/orders", "/orders", Some(json!({"customer": "kim"}))).await;
    a.post("/orders/{id}/cancel", &format!("/orders/{id}/cancel"), None).await;
    a.post("/products", "/products", Some(json!({"sku": "MUG", "name": "Mug", "price": 1, "stock": 1})))
        .await;
    a.get("/status", "/status?leg=x").await;

    // Webhooks and the node.
    let hook = json!({"url": "http://127.0.0.1:9/hook", "events": ["paid"]});
    let (_, subscription) = a.post("/subscriptions", "/subscriptions", Some(hook)).await;
    a.get("/subscriptions", "/subscriptions").await;
    let sub = subscription["id"].as_u64().unwrap();
    let (status, _) =
        a.send(Method::DELETE, "/subscriptions/{id}", &format!("/subscriptions/{sub}"), None, false).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    a.get("/workflows", "/workflows").await;
    a.get("/health/live", "/health/live").await;
    a.get("/health/ready", "/health/ready").await;

    // The operator's tools.
    a.admin(Method::GET, "/admin/dead-letters", "/admin/dead-letters", None).await;
    a.admin(Method::GET, "/admin/deliveries/failed", "/admin/deliveries/failed", None).await;
    let fault = json!({"latency_ms": 1});
    a.admin(Method::POST, "/admin/faults/{service}", "/admin/faults/delivery", Some(fault)).await;
    a.admin(Method::GET, "/admin/faults", "/admin/faults", None).await;
    a.admin(Method::DELETE, "/admin/faults/{service}", "/admin/faults/delivery", None).await;
    a.admin(Method::DELETE, "/admin/faults", "/admin/faults", None).await;
    a.admin(Method::POST, "/admin/services/{service}/pause", "/admin/services/delivery/pause", None).await;
    a.admin(Method::POST, "/admin/services/{service}/resume", "/admin/services/delivery/resume", None).await;
    let backup = tempfile::tempdir().unwrap();
    let to = json!({"to": backup.path().join("copy")});
    a.admin(Method::POST, "/admin/backup", "/admin/backup", Some(to)).await;
    a.send(Method::GET, "/admin/faults", "/admin/faults", None, false).await;

    let answers = a.seen;
    let statuses: Vec<u64> = answers.iter().map(|s| s["status"].as_u64().unwrap()).collect();
    for expected in [200, 201, 401, 404, 409, 422] {
        assert!(statuses.contains(&expected), "a {expected} among the answers: {statuses:?}");
    }
    check_against_document(&doc, answers);
}

/// Runs `openapi_check.py` on the answers: whether it found them all as
/// documented, and what it said.
fn check(doc: &Value, answers: Vec<Value>) -> (bool, String) {
    let script = tools::root().join("tests/api/openapi_check.py");
    let mut child = Command::new(tools::tool("python"))
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = json!({"document": doc, "answers": answers}).to_string();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

fn check_against_document(doc: &Value, answers: Vec<Value>) {
    let count = answers.len();
    let (ok, said) = check(doc, answers);
    assert!(ok, "answers the document does not describe:\n{said}");
    assert!(said.contains(&format!("checked {count} answers, 0 refused")), "{said}");
}

#[test]
fn a_mismatched_answer_is_refused() {
    // The checker is not a formality: a receipt without its id, and a
    // problem with a type the API never answers, are refused.
    let doc = serde_json::to_value(fulfil::http::openapi::document()).unwrap();
    let answers = vec![
        json!({"method": "post", "path": "/orders", "status": 201, "content_type": "application/json",
               "body": {"status": "placed", "total": 1, "replayed": false}}),
        json!({"method": "get", "path": "/orders/{id}", "status": 404, "content_type": "application/problem+json",
               "body": {"type": "/problems/made-up", "title": "x", "status": 404, "detail": "x"}}),
    ];
    let (ok, said) = check(&doc, answers);
    assert!(!ok, "{said}");
    assert!(said.contains("'id' is a required property"), "{said}");
    assert!(said.contains("/problems/made-up"), "{said}");
}
