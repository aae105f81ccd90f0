//! One order can be followed through the logs: the spans of the HTTP
//! request, the node call, the actor handler and every service's step carry
//! its id. Its own test binary, because it installs a global subscriber
//! (the actors log from their own threads).

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use helpers::{order_body, spawn_app};
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::format::FmtSpan;

/// Everything logged, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines_with(&self, needle: &str) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines().filter(|l| l.contains(needle)).map(str::to_owned).collect()
    }
}

#[tokio::test]
async fn an_orders_spans_carry_its_id_from_the_request_to_every_service() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("fulfil=debug")
        .with_span_events(FmtSpan::NEW)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let app = spawn_app().await;
    app.add_product("MUG", 1200, 5).await;
    let id = app.place(&order_body("kim", "MUG", 1, "bank_transfer")).await;
    let r = app.post(&format!("/orders/{id}/cancel")).await;
    assert_eq!(r.status(), 200);
    app.wait_for_status(&id, "canceled").await;
    app.settle().await;

    let of_order = captured.lines_with(&id);
    let cancel = format!("/orders/{id}/cancel");
    // The node's span nests in the request's; the actor's handler runs on
    // the actor's thread, so its span carries the order id on its own.
    let nested = of_order.iter().any(|l| {
        l.contains(&format!("http{{method=POST path={cancel}}}"))
            && l.contains(&format!("order{{order={id}}}"))
    });
    assert!(nested, "no request → node span chain for the cancel: {of_order:#?}");
    let handled = format!("handle{{service=\"order\" order=\"{id}\"}}");
    assert!(of_order.iter().any(|l| l.contains(&handled)), "no actor span for the cancel: {of_order:#?}");
    for service in ["order", "payment", "inventory", "delivery", "notification", "projection"] {
        let applied = of_order.iter().any(|l| l.contains(&format!("apply{{service=\"{service}\"")));
        assert!(applied, "no span of {service} applying an event of {id}: {of_order:#?}");
    }
    // The whole number: random order ids may well hold "4111".
    assert!(captured.lines_with("4111111111111111").is_empty(), "a card number was logged");
}
