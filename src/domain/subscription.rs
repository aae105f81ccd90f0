//! Subscriptions: an HTTP endpoint that receives the notifications of a
//! workflow, of a party's workflows, or of one customer, as they happen.
//!
//! Pure: what a subscription is, which notifications it wants, and how a
//! delivery is signed. The notification service keeps them, writes a
//! delivery for each match in the same write as the notification (an
//! outbox), and sends them.

use super::{CustomerId, Invalid, Notification, OrderStatus};
use serde::{Deserialize, Serialize};

/// Longest URL accepted.
const MAX_URL_LEN: usize = 2048;

/// A subscription as a client sends it, before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    /// Where deliveries are POSTed: `http://…`.
    pub url: String,
    /// Only orders of this workflow.
    #[serde(default)]
    pub workflow: Option<String>,
    /// Only orders of the workflows where this party role has a step.
    #[serde(default)]
    pub party: Option<String>,
    /// Only this customer's orders.
    #[serde(default)]
    pub customer: Option<String>,
    /// Only these statuses; none: every status change.
    #[serde(default)]
    pub events: Vec<String>,
    /// The key each delivery's body is signed with (HMAC-SHA256).
    #[serde(default)]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: u64,
    pub url: String,
    pub workflow: Option<String>,
    pub party: Option<String>,
    pub customer: Option<CustomerId>,
    pub events: Vec<OrderStatus>,
    /// Kept to sign with; never shown or logged.
    pub secret: Option<String>,
    /// The principal that made it: it sees and drops its own.
    pub owner: String,
}

impl NewSubscription {
    pub fn validate(&self, id: u64, owner: &str) -> Result<Subscription, Invalid> {
        let url = self.url.trim();
        if !url.starts_with("http://") || url.len() > MAX_URL_LEN || url.chars().any(char::is_control) {
            return Err(Invalid::new("url must be an http:// URL of at most 2048 bytes"));
        }
        let customer = self.customer.as_deref().map(CustomerId::parse).transpose()?;
        let mut events = Vec::new();
        for e in &self.events {
            events.push(
                OrderStatus::parse(e)
                    .ok_or_else(|| Invalid::new(format!("events: {e:?} is not a status")))?,
            );
        }
        if self.secret.as_deref().is_some_and(|s| s.len() < 16) {
            return Err(Invalid::new("secret must be at least 16 bytes"));
        }
        Ok(Subscription {
            id,
            url: url.to_owned(),
            workflow: self.workflow.clone(),
            party: self.party.clone(),
            customer,
            events,
            secret: self.secret.clone(),
            owner: owner.to_owned(),
        })
    }
}

impl Subscription {
    /// Whether it wants `n`, a notification about an order of `workflow`
    /// whose parties are `roles`.
    pub fn wants(&self, n: &Notification, workflow: Option<&str>, roles: &[&str]) -> bool {
        let workflow_ok = self.workflow.as_deref().is_none_or(|w| Some(w) == workflow);
        let party_ok = self.party.as_deref().is_none_or(|p| roles.contains(&p));
        let customer_ok = self.customer.as_ref().is_none_or(|c| *c == n.customer);
        let event_ok = self.events.is_empty() || self.events.contains(&n.status);
        workflow_ok && party_ok && customer_ok && event_ok
    }
}

/// A delivery waiting in a subscription's queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    pub subscription: u64,
    pub notification: Notification,
    /// The workflow's name for the status ("dispatched").
    pub label: String,
}

impl Outgoing {
    /// Its id, the receiver's idempotency key: the same on every attempt.
    pub fn id(&self) -> String {
        format!("{}-{}", self.subscription, self.notification.event)
    }

    /// The JSON body POSTed.
    pub fn body(&self) -> String {
        let n = &self.notification;
        serde_json::json!({
            "id": self.id(),
            "order_id": n.order_id,
            "event": n.event,
            "status": n.status,
            "label": self.label,
            "message": n.message,
            "customer": n.customer,
            "at": n.at,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OrderId;

    fn note(customer: &str, status: OrderStatus) -> Notification {
        Notification {
            event: 7,
            order_id: OrderId::from_number(1),
            customer: CustomerId::parse(customer).unwrap(),
            status,
            message: "m".into(),
            at: "t".into(),
        }
    }

    #[test]
    fn a_subscription_wants_what_it_names() {
        let s = NewSubscription {
            url: "http://127.0.0.1:9/hook".into(),
            workflow: Some("hotel".into()),
            events: vec!["accepted".into()],
            ..NewSubscription::default()
        }
        .validate(1, "operator")
        .unwrap();
        assert!(s.wants(&note("kim", OrderStatus::Accepted), Some("hotel"), &[]));
        assert!(!s.wants(&note("kim", OrderStatus::Paid), Some("hotel"), &[]));
        assert!(!s.wants(&note("kim", OrderStatus::Accepted), Some("shop"), &[]));
        let party =
            NewSubscription { url: "http://x/".into(), party: Some("driver".into()), ..Default::default() };
        let party = party.validate(2, "operator").unwrap();
        assert!(party.wants(&note("kim", OrderStatus::Placed), Some("taxi"), &["driver"]));
        assert!(!party.wants(&note("kim", OrderStatus::Placed), Some("shop"), &["seller"]));
    }

    #[test]
    fn a_bad_subscription_says_what_is_wrong() {
        let bad = |s: NewSubscription| s.validate(1, "operator").unwrap_err().0;
        assert!(bad(NewSubscription { url: "ftp://x".into(), ..Default::default() }).contains("http://"));
        let events =
            NewSubscription { url: "http://x".into(), events: vec!["shipped".into()], ..Default::default() };
        assert!(bad(events).contains("shipped"));
        let secret =
            NewSubscription { url: "http://x".into(), secret: Some("short".into()), ..Default::default() };
        assert!(bad(secret).contains("16 bytes"));
    }
}
