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
    /// For a product made of named units (drivers, rooms): the free ones.
    /// A reservation takes units from the front and names them. In a
    /// dated pool (rooms) the units stay here and are booked by date.
    pub units: Vec<String>,
    // Grown since format 1: new fields go at the end (see store::codec).
    /// Named units taken out of service: not handed out until put back.
    pub out_of_service: Vec<String>,
    /// Made of named units: restocked by name only, even while every unit
    /// is out working.
    pub pool: bool,
}

impl Product {
    /// Whether it is a pool of named units. Products stored before `pool`
    /// existed read it as false: they are pools if they name any unit.
    pub fn is_pool(&self) -> bool {
        self.pool || !self.units.is_empty() || !self.out_of_service.is_empty()
    }
}

/// A product as a client sends it, before validation. Numbers are signed so
/// that a negative one gets a clear message instead of a parse error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    #[schema(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")]
    pub sku: String,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    /// In minor units (won, cents).
    #[schema(minimum = 0)]
    pub price: i64,
    /// How many are on hand; for named units, their number (may be left out).
    #[serde(default)]
    #[schema(minimum = 0)]
    pub stock: Option<i64>,
    /// Named units (drivers of a transmission type, rooms of a type).
    #[serde(default)]
    pub units: Vec<String>,
}

impl NewProduct {
    pub fn validate(&self) -> Result<Product, Invalid> {
        let sku = Sku::parse(&self.sku)?;
        let name = super::text::free_text("name", &self.name, MAX_NAME_LEN)?;
        let price = Money::new(self.price).map_err(|_| Invalid::new("price must not be negative"))?;
        let units = validate_units(&self.units)?;
        let stock = match (self.stock, units.len() as u64) {
            (None, 0) => return Err(Invalid::new("give stock, or units")),
            (None, n) => n,
            (Some(s), n) => {
                let s = u64::try_from(s).map_err(|_| Invalid::new("stock must not be negative"))?;
                if n > 0 && s != n {
                    return Err(Invalid::new(format!("stock is {s} but {n} units are named")));
                }
                s
            }
        };
        let pool = !units.is_empty();
        Ok(Product { sku, name, price, stock, units, out_of_service: Vec::new(), pool })
    }
}

/// Unit names: distinct, each a valid id.
pub fn validate_units(units: &[String]) -> Result<Vec<String>, Invalid> {
    let mut seen = std::collections::BTreeSet::new();
    for u in units {
        Sku::parse(u).map_err(|e| Invalid::new(format!("unit {u:?}: {e}")))?;
        if !seen.insert(u.as_str()) {
            return Err(Invalid::new(format!("unit {u} is named twice")));
        }
    }
    Ok(units.to_vec())
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
        NewProduct { sku: "MUG".into(), name: "Mug".into(), price, stock: Some(stock), units: vec![] }
    }

    #[test]
    fn named_units_set_the_stock() {
        let drivers = NewProduct { units: vec!["kim".into(), "lee".into()], stock: None, ..new(0, 0) };
        assert_eq!(drivers.validate().unwrap().stock, 2);
        let mismatch = NewProduct { stock: Some(3), ..drivers.clone() };
        assert!(mismatch.validate().is_err());
        let twice = NewProduct { units: vec!["kim".into(), "kim".into()], ..drivers };
        assert!(twice.validate().unwrap_err().0.contains("twice"));
        assert!(NewProduct { stock: None, ..new(0, 0) }.validate().is_err());
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
