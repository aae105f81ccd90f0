//! OWASP API4: clients that send their headers or body a byte at a time
//! cannot hold the connections others need. Past `http.header_timeout_ms`
//! or `http.body_timeout_ms` they get 408 and their connection closes.

use crate::helpers::spawn_app_with;
use reqwest::StatusCode;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A client that opens a connection and trickles `head`, then its body, a
/// byte every 100 ms; returns what the server answered, if anything.
async fn trickle(address: String, head: &'static str, body: usize) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let bytes = head.bytes().chain(std::iter::repeat_n(b'x', body));
    for byte in bytes {
        if stream.write_all(&[byte]).await.is_err() {
            break; // closed on us: what we wanted
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.read_to_string(&mut answer)).await;
    answer
}

/// Headers at once, then a body of 200 bytes, trickled.
const SLOW_BODY: &str =
    "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n";
/// Headers that never end.
const SLOW_HEAD: &str = "GET /products/MUG HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

#[tokio::test]
async fn slow_clients_are_cut_off_and_the_others_are_served() {
    let app = spawn_app_with(|s| {
        s.http.workers = 1;
        s.http.max_connections = 4;
        s.http.header_timeout_ms = 1000;
        s.http.body_timeout_ms = 500;
    })
    .await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for n in 0..8 {
        let (head, body) = if n % 2 == 0 { (SLOW_BODY, 200) } else { (SLOW_HEAD, 0) };
        slow.push(tokio::spawn(trickle(address.clone(), head, body)));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Every connection slot is held by a slow client now; a normal client is
    // served once they are cut off, long before they would have finished
    // (200 bytes at 100 ms is 20 s).
    let started = Instant::now();
    let r = app.get("/products/MUG").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(started.elapsed() < Duration::from_secs(5), "served after {:?}", started.elapsed());
    for client in slow {
        let answer = client.await.unwrap();
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
}
