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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    /// Where deliveries are POSTed: `https://…` (or `http://…`).
    #[schema(format = "uri", pattern = r"^https?://")]
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
    /// The language deliveries are worded in (one the workflows speak);
    /// none: the customer's, or for a party the workflow's.
    #[serde(default)]
    pub lang: Option<String>,
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
    // Grown since format 2: new fields go at the end (see store::codec).
    /// The language deliveries are worded in.
    pub lang: Option<String>,
}

impl NewSubscription {
    pub fn validate(&self, id: u64, owner: &str) -> Result<Subscription, Invalid> {
        let url = self.url.trim();
        let parsed = url::Url::parse(url).ok().filter(|u| matches!(u.scheme(), "http" | "https"));
        let parsed = match parsed {
            Some(u) if url.len() <= MAX_URL_LEN && u.host().is_some() => u,
            _ => return Err(Invalid::new("url must be an http:// or https:// URL of at most 2048 bytes")),
        };
        // Credentials in a URL end up in logs and listings.
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(Invalid::new("url must not hold a user or password: sign with secret instead"));
        }
        let customer = self.customer.as_deref().map(CustomerId::parse).transpose()?;
        let mut events = Vec::new();
        for e in &self.events {
            events.push(
                OrderStatus::parse(e)
                    .ok_or_else(|| Invalid::new(format!("events: {e:?} is not a status")))?,
            );
        }
        let tag =
            |l: &str| (2..=16).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if self.lang.as_deref().is_some_and(|l| !tag(l)) {
            return Err(Invalid::new("lang must be a language tag such as \"ko\""));
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
            lang: self.lang.clone(),
        })
    }
}

/// Whether `url` may be reached by a subscription that someone other than
/// the operator made: its host is not `localhost` nor a loopback, private,
/// link-local or otherwise internal address (a guard against server-side
/// request forgery; a name is checked again for the addresses it resolves
/// to, when it is sent to).
pub fn public_target(url: &str) -> bool {
    match url::Url::parse(url).ok().and_then(|u| u.host().map(|h| h.to_owned())) {
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name != "localhost" && !name.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => public_address(ip.into()),
        Some(url::Host::Ipv6(ip)) => public_address(ip.into()),
        None => false,
    }
}

/// Whether `ip` is on the public internet (not loopback, private, shared,
/// link-local, unspecified, broadcast, documentation or unique-local).
pub fn public_address(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            let shared = a == 100 && (b & 0xc0) == 64;
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || shared
                || a == 0)
        }
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_address(v4.into()),
            None => {
                let first = v6.segments()[0];
                let unique_local = (first & 0xfe00) == 0xfc00;
                let link_local = (first & 0xffc0) == 0xfe80;
                !(v6.is_loopback() || v6.is_unspecified() || unique_local || link_local)
            }
        },
    }
}

impl Subscription {
    /// Whether the operator made it (who may reach any address).
    pub fn by_operator(&self) -> bool {
        matches!(self.owner.as_str(), "open" | "admin" | "operator")
    }

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
        let with_password =
            NewSubscription { url: "https://me:pw@example.com/".into(), ..Default::default() };
        assert!(bad(with_password).contains("user or password"));
        let events =
            NewSubscription { url: "http://x".into(), events: vec!["shipped".into()], ..Default::default() };
        assert!(bad(events).contains("shipped"));
        let secret =
            NewSubscription { url: "http://x".into(), secret: Some("short".into()), ..Default::default() };
        assert!(bad(secret).contains("16 bytes"));
    }

    #[test]
    fn only_public_hosts_are_public_targets() {
        for internal in [
            "http://127.0.0.1:9000/hook",
            "http://localhost/hook",
            "http://LOCALHOST./hook",
            "http://api.localhost/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(!public_target(internal), "{internal} is internal");
        }
        for public in
            ["https://hooks.example.com/x", "http://93.184.216.34/", "https://[2606:2800:220:1::1]/"]
        {
            assert!(public_target(public), "{public} is public");
        }
    }
}
