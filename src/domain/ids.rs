//! Identifiers. Each is a string newtype so that an order id can never be
//! passed where a sku is expected, and each validates what it accepts.

use super::Invalid;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest identifier accepted; ids end up in URLs, keys and log lines.
const MAX_ID_LEN: usize = 128;

/// Defines a string identifier with validation.
///
/// `allowed` decides which characters may appear; every id is non-empty, at
/// most [`MAX_ID_LEN`] bytes and free of control characters (the store uses
/// `\0` as a key separator).
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $allowed:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `raw`.
            pub fn parse(raw: &str) -> Result<Self, Invalid> {
                let allowed: fn(char) -> bool = $allowed;
                if raw.chars().all(super::text::is_invisible) {
                    return Err(Invalid::new(concat!($what, " must not be empty or only invisible characters")));
                }
                // `.` and `..` name directories in paths and URLs.
                if raw == "." || raw == ".." {
                    return Err(Invalid::new(concat!($what, " must not be . or ..")));
                }
                if raw.len() > MAX_ID_LEN {
                    return Err(Invalid::new(format!(
                        concat!($what, " must be at most {} bytes"),
                        MAX_ID_LEN
                    )));
                }
                let refused = |c: &char| c.is_control() || super::text::is_bidi_control(*c) || !allowed(*c);
                if let Some(c) = raw.chars().find(refused) {
                    return Err(Invalid::new(format!(
                        concat!($what, " contains a character that is not allowed: {:?}"),
                        c
                    )));
                }
                Ok($name(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// Characters that are safe in a URL path segment without escaping.
fn url_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

string_id!(
    /// An order's id, also the correlation key of every event of that order.
    OrderId,
    "order id",
    url_safe
);
string_id!(
    /// A product's stock-keeping unit.
    Sku,
    "sku",
    url_safe
);
string_id!(
    /// The customer who placed an order and receives its notifications.
    CustomerId,
    "customer",
    |_| true
);

impl OrderId {
    /// The id of the order numbered `n` by the store's id generator.
    pub fn from_number(n: u64) -> Self {
        OrderId(format!("ord-{n}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_empty_long_and_control_characters() {
        assert!(Sku::parse("").is_err());
        assert!(Sku::parse("   ").is_err());
        assert!(Sku::parse(&"a".repeat(129)).is_err());
        assert!(CustomerId::parse("bad\0name").is_err());
        assert!(Sku::parse("has space").is_err());
        assert!(Sku::parse("has/slash").is_err());
    }

    #[test]
    fn ids_that_show_as_nothing_or_name_a_directory_are_refused() {
        for id in [".", ".."] {
            assert!(Sku::parse(id).unwrap_err().0.contains(". or .."), "{id}");
        }
        assert!(Sku::parse("a.b").is_ok(), "a dot inside is fine");
        for nothing in ["\u{200B}", "\u{202E}", " \u{200B} "] {
            assert!(CustomerId::parse(nothing).is_err(), "{nothing:?}");
        }
        assert!(CustomerId::parse("kim\u{202E}nimda").is_err(), "a bidirectional override");
    }

    #[test]
    fn ids_accept_ordinary_values() {
        assert_eq!(Sku::parse("MUG-1").unwrap().as_str(), "MUG-1");
        assert_eq!(CustomerId::parse("Kim Minji").unwrap().as_str(), "Kim Minji");
        assert_eq!(OrderId::from_number(7).as_str(), "ord-7");
    }
}
