//! The matrix of who may take which step, generated from `config.toml`'s
//! workflows and run against the HTTP API: for every workflow, every step
//! it has, and every principal, the answer is allowed (anything but 403 and
//! 404), forbidden (403: the principal sees the order but the step is not
//! its), or not found (404: the order is none of its business).
//!
//! The expectation is read from the configuration here, by the rules as the
//! README states them, not computed by the engine's own code.

use crate::auth::{protected, who, KEYS};
use crate::helpers::TestApp;
use fulfil::domain::{Acceptance, PaymentMethod, Workflow};
use fulfil::Settings;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The role a step of `wf` is for, as the configuration says.
fn role_for(wf: &Workflow, step: &str) -> String {
    let accepting = match &wf.acceptance {
        Acceptance::Party(role) => Some(role.clone()),
        Acceptance::Auto => None,
    };
    match step {
        "cancel" | "receipt" => "customer:kim".into(),
        "accept" | "reject" => accepting.unwrap_or("seller".into()),
        "confirm_deposit" | "seller_cancel" => wf.parties.get(step).cloned().unwrap_or("seller".into()),
        leg => wf.parties.get(leg).cloned().or(accepting).unwrap_or("seller".into()),
    }
}

/// The steps `wf` has: its legs first (while nobody has accepted, so the
/// role decides), then acceptance, the seller's steps, the customer's.
fn steps(wf: &Workflow) -> Vec<String> {
    let mut steps: Vec<String> = wf.legs.iter().map(|l| l.name.clone()).collect();
    if matches!(wf.acceptance, Acceptance::Party(_)) {
        steps.extend(["reject".to_string(), "accept".into()]);
    }
    if wf.payment.contains(&PaymentMethod::BankTransfer) {
        steps.push("confirm_deposit".into());
    }
    if wf.seller_cancel_until.is_some() {
        steps.push("seller_cancel".into());
    }
    steps.extend(["receipt".to_string(), "cancel".into()]);
    steps
}

fn request(step: &str, id: &str) -> (String, Option<Value>) {
    match step {
        "cancel" => (format!("/orders/{id}/cancel"), None),
        "receipt" => (format!("/orders/{id}/receipt"), None),
        "accept" => (format!("/orders/{id}/accept"), None),
        "reject" => (format!("/orders/{id}/reject"), Some(json!({"reason": "matrix"}))),
        "confirm_deposit" => (format!("/payments/{id}/confirm"), None),
        "seller_cancel" => (format!("/orders/{id}/seller-cancel"), None),
        leg => (format!("/deliveries/{id}/legs/{leg}/start"), None),
    }
}

/// An order of `workflow` for customer kim, with what it needs in stock.
async fn order_of(app: &TestApp, workflow: &str, wf: &Workflow) -> String {
    let seller = who(app, "seller");
    let (sku, product) = match workflow {
        "hotel" => ("ROOM", json!({"sku": "ROOM", "name": "Room", "price": 100, "units": ["r1", "r2"]})),
        "driver" => ("DRV", json!({"sku": "DRV", "name": "Drivers", "price": 0, "units": ["d1", "d2"]})),
        _ => ("MUG", json!({"sku": "MUG", "name": "Mug", "price": 100, "stock": 50})),
    };
    let _ = seller.post("/products", Some(product)).await;
    let payment = if wf.payment.contains(&PaymentMethod::BankTransfer) {
        "bank_transfer"
    } else {
        wf.payment[0].as_str()
    };
    let mut body = json!({"workflow": workflow, "customer": "kim", "address": "Seoul", "payment": payment,
                          "card": "4111 1111 1111 1111"});
    if wf.reservation != fulfil::domain::ReservationMode::None {
        body["items"] = json!([{"sku": sku, "qty": 1}]);
    }
    if wf.dated {
        body["from"] = json!("2027-03-01");
        body["to"] = json!("2027-03-02");
    }
    who(app, "customer:kim").place(body).await
}

#[tokio::test]
async fn every_party_takes_exactly_the_steps_its_workflow_gives_it() {
    let settings = Settings::default();
    let app = protected().await;
    let mut table = Vec::new();
    let mut wrong = Vec::new();
    for (name, wf) in &settings.workflows {
        let id = order_of(&app, name, wf).await;
        app.settle().await;
        let steps = steps(wf);
        let roles: Vec<String> = steps.iter().map(|s| role_for(wf, s)).collect();
        for step in &steps {
            for (_, principal) in KEYS {
                let role = principal.split(':').next().unwrap();
                let sees = principal == "customer:kim"
                    || matches!(principal, "operator" | "admin")
                    || roles.iter().any(|r| r == principal || r == role);
                let owner = role_for(wf, step);
                let allowed = owner == principal || owner == role;
                let (path, body) = request(step, &id);
                let status = who(&app, principal).post(&path, body).await.status();
                let expected = match (allowed, sees) {
                    (true, _) => "allowed",
                    (false, true) => "403",
                    (false, false) => "404",
                };
                let got = match status {
                    StatusCode::FORBIDDEN => "403",
                    StatusCode::NOT_FOUND => "404",
                    _ => "allowed",
                };
                table.push(format!("{name:9} {step:16} {principal:13} {expected:8} {status}"));
                if got != expected {
                    wrong.push(format!("{name} {step} by {principal}: expected {expected}, got {status}"));
                }
            }
        }
    }
    println!("{}", table.join("\n"));
    assert!(wrong.is_empty(), "{} of {} cells differ:\n{}", wrong.len(), table.len(), wrong.join("\n"));
    assert!(table.len() > 250, "every workflow, step and principal: {}", table.len());
}
