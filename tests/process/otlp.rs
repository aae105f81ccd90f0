//! The OTLP exporter (`log.otlp_endpoint`): with the `otlp` feature, the
//! node's spans reach a collector, an order's carrying its id; without it,
//! an endpoint is refused at start with the way to get it.
//! `.ci/run` runs this with `--features otlp` too.

use crate::helpers::Proc;

#[cfg(not(feature = "otlp"))]
#[test]
fn an_otlp_endpoint_without_the_exporter_built_in_is_refused_with_the_way_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let (status, said) = Proc::refused(dir.path(), &[("FULFIL_LOG__OTLP_ENDPOINT", "http://127.0.0.1:4318")]);
    assert_eq!(status.code(), Some(2), "{said}");
    assert!(said.contains("--features otlp"), "{said}");
}

#[cfg(feature = "otlp")]
mod exporter {
    use super::Proc;
    use crate::helpers::{add_products, client};
    use serde_json::json;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// What a collector received: each request's path and body.
    type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

    /// A collector on a free loopback port: answers every POST with 200 and
    /// keeps what it got.
    fn collector() -> (String, Received) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let received = Received::default();
        let kept = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let kept = kept.clone();
                std::thread::spawn(move || serve(stream, &kept));
            }
        });
        (address, received)
    }

    /// Reads requests off one connection until it closes.
    fn serve(stream: std::net::TcpStream, kept: &Received) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_owned();
            let mut length = 0;
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            kept.lock().unwrap().push((path, body));
            writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap();
        }
    }

    #[tokio::test]
    async fn an_orders_spans_reach_the_collector_with_its_id() {
        let (endpoint, received) = collector();
        let dir = tempfile::tempdir().unwrap();
        let node = Proc::start_with(dir.path(), &[("FULFIL_LOG__OTLP_ENDPOINT", endpoint.as_str())]);
        add_products(&node.address, &[("MUG", 5)]).await;
        let order = json!({"customer": "kim", "items": [{"sku": "MUG", "qty": 1}], "address": "Seoul",
                           "payment": "card", "card": "4111 1111 1111 1111"});
        let r = client().post(format!("{}/orders", node.address)).json(&order).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let id = r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();

        // A clean stop sends what is still batched.
        node.signal("TERM");
        assert!(node.wait(Duration::from_secs(20)).await.success());

        let received = received.lock().unwrap();
        assert!(!received.is_empty(), "the collector received nothing");
        assert!(
            received.iter().all(|(path, _)| path == "/v1/traces"),
            "{:?}",
            received.iter().map(|r| &r.0).collect::<Vec<_>>()
        );
        let carries =
            |needle: &[u8]| received.iter().any(|(_, body)| body.windows(needle.len()).any(|w| w == needle));
        assert!(carries(id.as_bytes()), "no span carries the order's id");
        assert!(carries(b"fulfil"), "the spans name their service");
        assert!(!carries(b"4111111111111111"), "a card number was exported");
    }
}
