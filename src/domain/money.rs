//! Money as an integer number of minor units (won, cents): never a float.

use super::Invalid;
use serde::{Deserialize, Serialize};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct Money(i64);

impl Money {
    pub const ZERO: Money = Money(0);

    /// A non-negative amount; prices and totals are never negative.
    pub fn new(minor: i64) -> Result<Money, Invalid> {
        if minor < 0 {
            return Err(Invalid::new("an amount must not be negative"));
        }
        Ok(Money(minor))
    }

    pub fn minor(self) -> i64 {
        self.0
    }

    /// `self * qty`, or an error instead of an overflow.
    pub fn times(self, qty: u32) -> Result<Money, Invalid> {
        self.0
            .checked_mul(i64::from(qty))
            .map(Money)
            .ok_or_else(|| Invalid::new("the order total is too large"))
    }

    /// `self + other`, or an error instead of an overflow.
    pub fn plus(self, other: Money) -> Result<Money, Invalid> {
        self.0.checked_add(other.0).map(Money).ok_or_else(|| Invalid::new("the order total is too large"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_amounts_are_refused() {
        assert!(Money::new(-1).is_err());
        assert_eq!(Money::new(0).unwrap(), Money::ZERO);
    }

    #[test]
    fn arithmetic_refuses_overflow() {
        let big = Money::new(i64::MAX / 2 + 1).unwrap();
        assert!(big.times(2).is_err());
        assert!(big.plus(big).is_err());
        assert_eq!(Money::new(1500).unwrap().times(3).unwrap().minor(), 4500);
    }
}
