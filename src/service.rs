//! The one list of a node's services.
//!
//! Everything that is per service (mailbox sizes, admission gates, pings,
//! pause/resume, redelivery, boot order, metric labels, fault targets) is
//! driven from [`Service::ALL`], so adding a service is one new variant here
//! plus its actor; the compiler finds every `match` that must learn it.

use serde::{Deserialize, Serialize};

/// The services of a node, in boot order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    Order,
    Payment,
    Inventory,
    Delivery,
    Notification,
    Projection,
}

/// The simulated card gateway: not a service, but a target for injected
/// faults (latency, failures) like one.
pub const GATEWAY: &str = "gateway";

/// A failover follower applying the stream's copies of the store: a
/// target for `latency_ms` from the settings only (a slow follower, to
/// see what lag does), since the admin API is the leader's.
pub const REPLICA: &str = "replica";

impl Service {
    pub const ALL: [Service; 6] = [
        Service::Order,
        Service::Payment,
        Service::Inventory,
        Service::Delivery,
        Service::Notification,
        Service::Projection,
    ];

    /// The name health reports, metrics labels, faults and dead letters use.
    pub const fn name(self) -> &'static str {
        match self {
            Service::Order => "order",
            Service::Payment => "payment",
            Service::Inventory => "inventory",
            Service::Delivery => "delivery",
            Service::Notification => "notification",
            Service::Projection => "projection",
        }
    }

    pub fn parse(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Its position in [`Service::ALL`], for per-service arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Whether faults can be injected into `name`: a service or the gateway.
pub fn is_fault_target(name: &str) -> bool {
    Service::parse(name).is_some() || name == GATEWAY
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_parses_back_from_its_name_and_sits_at_its_index() {
        for (i, s) in Service::ALL.into_iter().enumerate() {
            assert_eq!(Service::parse(s.name()), Some(s));
            assert_eq!(s.index(), i);
        }
        assert_eq!(Service::parse("gateway"), None);
        assert!(is_fault_target("gateway") && is_fault_target("order") && !is_fault_target("nope"));
    }
}
