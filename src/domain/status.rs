//! The order statuses and the transitions allowed between them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where an order is in its lifecycle. The names are the public contract:
/// they appear in the HTTP API, the status view and notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Placed,
    PaymentPending,
    Paid,
    Reserved,
    InDelivery,
    Delivered,
    Closed,
    Canceled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 8] = [
        OrderStatus::Placed,
        OrderStatus::PaymentPending,
        OrderStatus::Paid,
        OrderStatus::Reserved,
        OrderStatus::InDelivery,
        OrderStatus::Delivered,
        OrderStatus::Closed,
        OrderStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "placed",
            OrderStatus::PaymentPending => "payment_pending",
            OrderStatus::Paid => "paid",
            OrderStatus::Reserved => "reserved",
            OrderStatus::InDelivery => "in_delivery",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Closed => "closed",
            OrderStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Position along the happy path; cancel cut-offs compare these.
    /// `Canceled` is off the path and ranks after everything.
    pub fn rank(self) -> u8 {
        self as u8
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, OrderStatus::Closed | OrderStatus::Canceled)
    }

    /// The state machine: may an order move from `self` to `next`?
    ///
    /// Every move not listed is refused, so a replayed or out-of-order event
    /// can never walk an order backwards or out of a terminal status.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        match (self, next) {
            (Placed, PaymentPending | Paid) => true,
            (PaymentPending, Paid) => true,
            (Paid, Reserved) => true,
            (Reserved, InDelivery) => true,
            (InDelivery, Delivered) => true,
            (Delivered, Closed) => true,
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
            (PaymentPending, Paid),
            (Paid, Reserved),
            (Reserved, InDelivery),
            (InDelivery, Delivered),
            (Delivered, Closed),
            (Placed, Canceled),
            (PaymentPending, Canceled),
            (Paid, Canceled),
            (Reserved, Canceled),
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
        }
    }
}
