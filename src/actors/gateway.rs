//! The simulated card gateway that stands in for a real acquirer.
//!
//! It is deterministic so that tests and demos can ask for a decline: every
//! card number ending in the configured suffix is declined.

use crate::domain::{Money, OrderId};

#[derive(Debug, Clone)]
pub struct CardGateway {
    decline_suffix: String,
}

impl CardGateway {
    pub fn new(decline_suffix: impl Into<String>) -> Self {
        CardGateway { decline_suffix: decline_suffix.into() }
    }

    /// Authorises `amount` on `card` for `order`: the authorisation's id, or
    /// the issuer's reason for declining. The id is derived from the order so
    /// that authorising the same order again yields the same payment.
    pub fn authorize(&self, order: &OrderId, card: &str, _amount: Money) -> Result<String, String> {
        if !self.decline_suffix.is_empty() && card.ends_with(&self.decline_suffix) {
            return Err(format!("the issuer declined the card ending in {}", last4(card)));
        }
        Ok(format!("pay-{order}"))
    }
}

/// The last four digits, the most of a card number that is ever shown or kept.
pub fn last4(card: &str) -> &str {
    &card[card.len().saturating_sub(4)..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declines_exactly_the_configured_test_numbers() {
        let g = CardGateway::new("0002");
        let order = OrderId::from_number(1);
        assert!(g.authorize(&order, "4000000000000002", Money::ZERO).unwrap_err().contains("0002"));
        assert_eq!(g.authorize(&order, "4111111111111111", Money::ZERO).unwrap(), "pay-ord-1");
    }
}
