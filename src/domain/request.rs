//! What a customer asks for, checked before any service is asked: the
//! order request as a client sends it, and the validated order.

use super::details::Details;
use super::stay::Stay;
use super::workflow::ReservationMode;
use super::{CustomerId, Invalid, Sku, Workflow};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Most lines one order may hold.
pub const MAX_LINES: usize = 100;
/// Longest delivery address accepted.
pub const MAX_ADDRESS_LEN: usize = 500;

/// How an order is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// Authorised synchronously with the order.
    Card,
    /// Pending until the seller confirms the deposit.
    BankTransfer,
    /// Nothing to pay.
    None,
}

impl PaymentMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Card => "card",
            PaymentMethod::BankTransfer => "bank_transfer",
            PaymentMethod::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<PaymentMethod> {
        [PaymentMethod::Card, PaymentMethod::BankTransfer, PaymentMethod::None]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

impl fmt::Display for PaymentMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One requested line as a client sends it. Quantities are signed so that a
/// negative one gets a clear message instead of a parse error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    #[schema(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")]
    pub sku: String,
    #[schema(minimum = 1)]
    pub qty: i64,
}

/// An order as a client sends it, before validation. A field it does not
/// know is refused, naming it: a mistyped or unsupported field must not
/// vanish with a 201.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    #[schema(min_length = 1, max_length = 128, pattern = r"\S")]
    pub customer: String,
    /// May be empty in a workflow that reserves nothing (a taxi call).
    #[serde(default)]
    pub items: Vec<ItemRequest>,
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub address: String,
    #[schema(value_type = crate::domain::PaymentMethod)]
    pub payment: String,
    /// Card number, for card payment.
    #[serde(default)]
    pub card: Option<String>,
    /// Named workflow; the node's default when absent.
    #[serde(default)]
    pub workflow: Option<String>,
    /// The business's own details (destination, guests), kept and shown.
    #[serde(default)]
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
    /// For a dated workflow (the hotel): the first night, or start.
    #[serde(default)]
    pub from: Option<String>,
    /// For a dated workflow: the day of departure, or end.
    #[serde(default)]
    pub to: Option<String>,
    /// The language of the customer's messages (`"ko"`): one the workflow
    /// has messages in; its own language when left out.
    #[serde(default)]
    pub lang: Option<String>,
}

/// An order request that passed every check that needs no other service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidOrder {
    pub customer: CustomerId,
    pub lines: Vec<(Sku, u32)>,
    pub address: String,
    pub payment: PaymentMethod,
    pub card: Option<String>,
    pub workflow: String,
    pub details: Option<Details>,
    pub stay: Option<Stay>,
    /// The language of the customer's messages.
    pub lang: String,
}

impl OrderRequest {
    /// The workflow the request names, or `default`.
    pub fn workflow_name<'a>(&'a self, default: &'a str) -> &'a str {
        self.workflow.as_deref().unwrap_or(default)
    }

    /// Checks everything that can be checked without the catalog, for an
    /// order of `workflow`.
    pub fn validate(&self, workflow: &Workflow) -> Result<ValidOrder, Invalid> {
        let customer = CustomerId::parse(&self.customer)?;
        let lines = validate_items(&self.items, workflow.reservation == ReservationMode::None)?;
        let address = super::text::free_text("address", &self.address, MAX_ADDRESS_LEN)?;
        let payment = PaymentMethod::parse(&self.payment).ok_or_else(|| {
            Invalid::new(format!("payment must be one of card, bank_transfer, none (got {:?})", self.payment))
        })?;
        if !workflow.allows_payment(payment) {
            let allowed: Vec<&str> = workflow.payment.iter().map(|m| m.as_str()).collect();
            return Err(Invalid::new(format!(
                "workflow {} takes payment {} only (got {payment})",
                workflow.name,
                allowed.join(" or ")
            )));
        }
        let card = match payment {
            PaymentMethod::Card => Some(validate_card(self.card.as_deref())?),
            _ => None,
        };
        let details = self.details.as_ref().map(Details::validate).transpose()?;
        let stay = self.stay(workflow)?;
        let lang = match &self.lang {
            None => workflow.lang.clone(),
            Some(l) if workflow.languages().any(|known| known == l) => l.clone(),
            Some(l) => {
                let known: Vec<&str> = workflow.languages().collect();
                return Err(Invalid::new(format!(
                    "lang {l:?}: workflow {} speaks {}",
                    workflow.name,
                    known.join(", ")
                )));
            }
        };
        Ok(ValidOrder {
            customer,
            lines,
            address,
            payment,
            card,
            workflow: workflow.name.clone(),
            details,
            stay,
            lang,
        })
    }

    /// The dates of the booking: required by a dated workflow, refused by
    /// any other (they would be dropped).
    fn stay(&self, workflow: &Workflow) -> Result<Option<Stay>, Invalid> {
        match (self.from.as_deref(), self.to.as_deref(), workflow.dated) {
            (Some(from), Some(to), true) => Ok(Some(Stay::parse(from, to)?)),
            (None, None, false) => Ok(None),
            (_, _, true) => {
                Err(Invalid::new(format!("workflow {} books dates: give from and to", workflow.name)))
            }
            (_, _, false) => Err(Invalid::new(format!(
                "workflow {} does not book dates: leave out from and to",
                workflow.name
            ))),
        }
    }
}

fn validate_items(items: &[ItemRequest], may_be_empty: bool) -> Result<Vec<(Sku, u32)>, Invalid> {
    if items.is_empty() && !may_be_empty {
        return Err(Invalid::new("items must hold at least one line"));
    }
    if items.len() > MAX_LINES {
        return Err(Invalid::new(format!("an order holds at most {MAX_LINES} lines")));
    }
    let mut lines: Vec<(Sku, u32)> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let sku = Sku::parse(&item.sku).map_err(|e| Invalid::new(format!("items[{i}]: {e}")))?;
        if item.qty <= 0 {
            return Err(Invalid::new(format!("items[{i}]: qty must be at least 1 (got {})", item.qty)));
        }
        let qty =
            u32::try_from(item.qty).map_err(|_| Invalid::new(format!("items[{i}]: qty is too large")))?;
        if lines.iter().any(|(s, _)| *s == sku) {
            return Err(Invalid::new(format!("items[{i}]: sku {sku} is listed twice")));
        }
        lines.push((sku, qty));
    }
    Ok(lines)
}

/// A card number: 12 to 19 digits, spaces and dashes ignored.
fn validate_card(card: Option<&str>) -> Result<String, Invalid> {
    let raw = card.ok_or_else(|| Invalid::new("card payment needs a card number in \"card\""))?;
    let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if !(12..=19).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(Invalid::new("card must be 12 to 19 digits"));
    }
    Ok(digits)
}
