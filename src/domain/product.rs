//! Products and their stock, as the inventory service keeps them.

use super::{Invalid, Money, Sku};
use serde::{Deserialize, Serialize};

/// Longest product name accepted.
const MAX_NAME_LEN: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub sku: Sku,
    pub name: String,
    pub price: Money,
    /// Units on hand and not reserved by any order.
    pub stock: u64,
}

/// A product as a client sends it, before validation. Numbers are signed so
/// that a negative one gets a clear message instead of a parse error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewProduct {
    pub sku: String,
    pub name: String,
    pub price: i64,
    pub stock: i64,
}

impl NewProduct {
    pub fn validate(&self) -> Result<Product, Invalid> {
        let sku = Sku::parse(&self.sku)?;
        let name = self.name.trim();
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(Invalid::new(format!("name must be 1 to {MAX_NAME_LEN} bytes")));
        }
        let price = Money::new(self.price).map_err(|_| Invalid::new("price must not be negative"))?;
        let stock = u64::try_from(self.stock).map_err(|_| Invalid::new("stock must not be negative"))?;
        Ok(Product { sku, name: name.to_owned(), price, stock })
    }
}

/// Validates a restock quantity: at least one unit.
pub fn restock_qty(qty: i64) -> Result<u64, Invalid> {
    u64::try_from(qty)
        .ok()
        .filter(|q| *q > 0)
        .ok_or_else(|| Invalid::new(format!("qty must be at least 1 (got {qty})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(price: i64, stock: i64) -> NewProduct {
        NewProduct { sku: "MUG".into(), name: "Mug".into(), price, stock }
    }

    #[test]
    fn negative_price_or_stock_is_refused() {
        assert!(new(-1, 1).validate().unwrap_err().0.contains("price"));
        assert!(new(1, -1).validate().unwrap_err().0.contains("stock"));
        assert_eq!(new(0, 0).validate().unwrap().stock, 0);
    }

    #[test]
    fn restock_needs_a_positive_quantity() {
        assert!(restock_qty(0).is_err());
        assert!(restock_qty(-5).is_err());
        assert_eq!(restock_qty(5).unwrap(), 5);
    }
}
