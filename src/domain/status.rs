//! The order statuses and the transitions allowed between them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where an order is in its lifecycle. The names are the public contract:
/// they appear in the HTTP API, the status view and notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Placed,
    PaymentPending,
    Paid,
    Reserved,
    /// Accepted by the party that fulfils it (shop, hotel, driver).
    Accepted,
    InDelivery,
    Delivered,
    Closed,
    Canceled,
    /// Turned down by the party that was to accept it.
    Rejected,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 10] = [
        OrderStatus::Placed,
        OrderStatus::PaymentPending,
        OrderStatus::Paid,
        OrderStatus::Reserved,
        OrderStatus::Accepted,
        OrderStatus::InDelivery,
        OrderStatus::Delivered,
        OrderStatus::Closed,
        OrderStatus::Canceled,
        OrderStatus::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "placed",
            OrderStatus::PaymentPending => "payment_pending",
            OrderStatus::Paid => "paid",
            OrderStatus::Reserved => "reserved",
            OrderStatus::Accepted => "accepted",
            OrderStatus::InDelivery => "in_delivery",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Closed => "closed",
            OrderStatus::Canceled => "canceled",
            OrderStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Position along the happy path; cancel cut-offs compare these.
    /// `Canceled` and `Rejected` are off the path and rank after everything.
    pub fn rank(self) -> u8 {
        self as u8
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, OrderStatus::Closed | OrderStatus::Canceled | OrderStatus::Rejected)
    }

    /// The state machine: may an order move from `self` to `next`?
    ///
    /// Every move not listed is refused, so a replayed or out-of-order event
    /// can never walk an order backwards or out of a terminal status.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        // Steps a workflow leaves out are skipped: a taxi call goes from
        // placed to accepted, a driver call from placed to reserved.
        match (self, next) {
            (Placed, PaymentPending | Paid | Reserved | Accepted) => true,
            (PaymentPending, Paid) => true,
            (Paid, Reserved | Accepted | InDelivery) => true,
            (Reserved, Accepted | InDelivery) => true,
            (Accepted, InDelivery) => true,
            // The next leg of a delivery.
            (InDelivery, InDelivery | Delivered) => true,
            (Delivered, Closed) => true,
            // Only an order waiting for acceptance can be turned down.
            (Placed | Paid | Reserved, Rejected) => true,
            (from, Canceled) => !from.is_terminal(),
            _ => false,
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::{self, *};

    #[test]
    fn names_round_trip() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(OrderStatus::parse("shipped"), None);
    }

    #[test]
    fn every_transition_is_allowed_or_refused_as_specified() {
        let allowed = [
            (Placed, PaymentPending),
            (Placed, Paid),
            (Placed, Reserved),
            (Placed, Accepted),
            (PaymentPending, Paid),
            (Paid, Reserved),
            (Paid, Accepted),
            (Paid, InDelivery),
            (Reserved, Accepted),
            (Reserved, InDelivery),
            (Accepted, InDelivery),
            (InDelivery, InDelivery),
            (InDelivery, Delivered),
            (Delivered, Closed),
            (Placed, Rejected),
            (Paid, Rejected),
            (Reserved, Rejected),
            (Placed, Canceled),
            (PaymentPending, Canceled),
            (Paid, Canceled),
            (Reserved, Canceled),
            (Accepted, Canceled),
            (InDelivery, Canceled),
            (Delivered, Canceled),
        ];
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                let expected = allowed.contains(&(from, to));
                assert_eq!(from.can_become(to), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn terminal_statuses_go_nowhere() {
        for to in OrderStatus::ALL {
            assert!(!Closed.can_become(to));
            assert!(!Canceled.can_become(to));
            assert!(!Rejected.can_become(to));
        }
    }
}
