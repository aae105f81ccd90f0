//! A failover follower's gateway (`fulfil::http::forward`) against a
//! stand-in leader that echoes what it received: a request goes on once,
//! with one `X-Forwarded-For` naming the client, and its answer comes back
//! as the leader gave it; without a leader, or for a request already
//! forwarded once, 503 `no-leader` with `Retry-After`.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use fulfil::http::forward::{follower_routes, FollowState, Following};
use std::sync::Arc;

/// A stand-in leader: answers 201 with the method, path, body and the
/// forwarding headers it received.
async fn leader() -> String {
    async fn echo(req: HttpRequest, body: web::Bytes) -> HttpResponse {
        let all = |name: &str| -> Vec<String> {
            req.headers().get_all(name).map(|v| v.to_str().unwrap().to_owned()).collect()
        };
        HttpResponse::Created().insert_header(("x-leader", "yes")).json(serde_json::json!({
            "method": req.method().as_str(),
            "path": req.uri().to_string(),
            "body": String::from_utf8_lossy(&body),
            "forwarded_for": all("x-forwarded-for"),
            "marked": all("fulfil-forwarded"),
            "authorization": all("authorization"),
        }))
    }
    let server =
        HttpServer::new(|| App::new().default_service(web::to(echo))).workers(1).bind("127.0.0.1:0").unwrap();
    let address = server.addrs()[0];
    tokio::spawn(server.run());
    format!("http://{address}")
}

/// A follower's gateway on port 0, with `following` as its view.
fn follower(following: Arc<Following>) -> String {
    let routes = follower_routes(following);
    let server =
        HttpServer::new(move || App::new().configure(routes.clone())).workers(1).bind("127.0.0.1:0").unwrap();
    let address = server.addrs()[0];
    tokio::spawn(server.run());
    format!("http://{address}")
}

#[tokio::test]
async fn a_request_goes_on_to_the_leader_once_with_the_clients_address() {
    let following = Arc::new(Following::default());
    following.set(FollowState { leader: Some(leader().await), caught_up: true, applied: 1, behind: 0 });
    let url = follower(following);
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{url}/orders?x=1"))
        .header("authorization", "Bearer k")
        .header("x-forwarded-for", "203.0.113.7")
        .body("{\"a\":1}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-leader"], "yes");
    let seen: serde_json::Value = r.json().await.unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/orders?x=1");
    assert_eq!(seen["body"], "{\"a\":1}");
    assert_eq!(seen["authorization"], serde_json::json!(["Bearer k"]));
    assert_eq!(seen["forwarded_for"], serde_json::json!(["203.0.113.7, 127.0.0.1"]));
    assert_eq!(seen["marked"], serde_json::json!(["1"]));
}

#[tokio::test]
async fn without_a_leader_or_twice_forwarded_the_answer_is_503_no_leader_with_retry_after() {
    let following = Arc::new(Following::default());
    let url = follower(following.clone());
    let client = reqwest::Client::new();
    let r = client.get(format!("{url}/status")).send().await.unwrap();
    let problem = crate::helpers::assert_problem(r, reqwest::StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem["type"], "/problems/no-leader");

    following.set(FollowState { leader: Some(leader().await), caught_up: true, applied: 1, behind: 0 });
    let r = client.get(format!("{url}/status")).header("fulfil-forwarded", "1").send().await.unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    let problem = crate::helpers::assert_problem(r, reqwest::StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem["type"], "/problems/no-leader");

    // Its own health: ready once caught up, whether or not a node leads.
    let ready = client.get(format!("{url}/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["role"], "follower");
}
