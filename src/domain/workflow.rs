//! A workflow: the knobs that make one engine run different businesses.

use super::{OrderStatus, PaymentMethod};
use serde::{Deserialize, Serialize};

/// The settings of one named workflow (from `[workflows.<name>]` in the
/// configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workflow {
    /// Filled from the table's key when loaded from configuration.
    #[serde(default)]
    pub name: String,
    /// Payment methods an order of this workflow may use.
    pub payment: Vec<PaymentMethod>,
    /// Whether the customer must confirm receipt before the order closes.
    pub receipt: bool,
    /// The last status at which the customer may still cancel.
    pub cancel_until: OrderStatus,
    /// What placing a card order does when the payment service cannot
    /// answer (breaker open, overloaded, failing).
    #[serde(default)]
    pub payment_fallback: PaymentFallback,
}

/// When card payment is unavailable: refuse the order ("pay a little
/// later", 503 with `Retry-After`), or accept it as `payment_pending` and take
/// the payment once the gateway recovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentFallback {
    Refuse,
    #[default]
    Defer,
}

impl Workflow {
    /// The shopping mall of seed 000: bank transfer (or card), receipt
    /// confirmation, cancel only before the deposit is confirmed.
    pub fn shop() -> Workflow {
        Workflow {
            name: "shop".to_owned(),
            payment: vec![PaymentMethod::BankTransfer, PaymentMethod::Card],
            receipt: true,
            cancel_until: OrderStatus::PaymentPending,
            payment_fallback: PaymentFallback::Defer,
        }
    }

    pub fn allows_payment(&self, method: PaymentMethod) -> bool {
        self.payment.contains(&method)
    }

    /// Whether a customer may cancel an order that is at `status`.
    pub fn allows_cancel(&self, status: OrderStatus) -> bool {
        !status.is_terminal() && status.rank() <= self.cancel_until.rank()
    }
}
