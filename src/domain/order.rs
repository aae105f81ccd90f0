//! The order aggregate: what a customer asks for, the rules for each command,
//! and how the order reacts to what the other services report.
//!
//! `decide` and `react` only compute events; `apply` folds an event into the
//! order. The order actor runs them and stores the result, so everything
//! here is testable without a store.

use super::event::CancelReason;
use super::{CustomerId, EventKind, Invalid, Money, OrderId, OrderStatus, Sku, Workflow};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Most lines one order may hold.
pub const MAX_LINES: usize = 100;
/// Longest delivery address accepted.
pub const MAX_ADDRESS_LEN: usize = 500;

/// How an order is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// One line of an order, priced when the order was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: Sku,
    pub qty: u32,
    pub unit_price: Money,
}

/// One requested line as a client sends it. Quantities are signed so that a
/// negative one gets a clear message instead of a parse error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRequest {
    pub sku: String,
    pub qty: i64,
}

/// An order as a client sends it, before validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRequest {
    pub customer: String,
    pub items: Vec<ItemRequest>,
    pub address: String,
    pub payment: String,
    /// Card number, for card payment.
    #[serde(default)]
    pub card: Option<String>,
    /// Named workflow; the node's default when absent.
    #[serde(default)]
    pub workflow: Option<String>,
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
}

impl OrderRequest {
    /// Checks everything that can be checked without the catalog.
    pub fn validate(&self, default_workflow: &str) -> Result<ValidOrder, Invalid> {
        let customer = CustomerId::parse(&self.customer)?;
        let lines = validate_items(&self.items)?;
        let address = self.address.trim();
        if address.is_empty() {
            return Err(Invalid::new("address must not be empty"));
        }
        if address.len() > MAX_ADDRESS_LEN {
            return Err(Invalid::new(format!("address must be at most {MAX_ADDRESS_LEN} bytes")));
        }
        let payment = PaymentMethod::parse(&self.payment).ok_or_else(|| {
            Invalid::new(format!("payment must be one of card, bank_transfer, none (got {:?})", self.payment))
        })?;
        let card = match payment {
            PaymentMethod::Card => Some(validate_card(self.card.as_deref())?),
            _ => None,
        };
        Ok(ValidOrder {
            customer,
            lines,
            address: address.to_owned(),
            payment,
            card,
            workflow: self.workflow.clone().unwrap_or_else(|| default_workflow.to_owned()),
        })
    }
}

fn validate_items(items: &[ItemRequest]) -> Result<Vec<(Sku, u32)>, Invalid> {
    if items.is_empty() {
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

/// How an order's payment stands when it is placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Paid: the authorisation's id (`"none"` when there is nothing to pay).
    Paid(String),
    /// To be paid later: a bank transfer, or a card payment deferred while
    /// the gateway is unavailable.
    Pending,
}

/// A command refused because of the order's current status (HTTP 409).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// Commands a party can give an existing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// The seller confirms the bank-transfer deposit.
    ConfirmDeposit,
    /// The customer cancels.
    Cancel,
    /// The customer confirms receipt of the goods.
    ConfirmReceipt,
}

/// The command side's record of one order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub customer: CustomerId,
    pub items: Vec<OrderLine>,
    pub address: String,
    pub payment: PaymentMethod,
    pub total: Money,
    pub workflow: String,
    pub status: OrderStatus,
    pub payment_id: Option<String>,
    pub refunded: bool,
    pub delivery_id: Option<String>,
    pub reason: Option<CancelReason>,
}

impl Order {
    /// The order's lines priced from the catalog (one price per line, in
    /// order) and its total.
    pub fn price(order: &ValidOrder, prices: &[Money]) -> Result<(Vec<OrderLine>, Money), Invalid> {
        if prices.len() != order.lines.len() {
            return Err(Invalid::new("every line needs a price"));
        }
        let mut items = Vec::with_capacity(order.lines.len());
        let mut total = Money::ZERO;
        for ((sku, qty), price) in order.lines.iter().zip(prices) {
            total = total.plus(price.times(*qty)?)?;
            items.push(OrderLine { sku: sku.clone(), qty: *qty, unit_price: *price });
        }
        Ok((items, total))
    }

    /// Places `order` as `id`: the new order and the events that record it.
    pub fn place(
        id: &OrderId,
        order: &ValidOrder,
        prices: &[Money],
        settlement: Settlement,
    ) -> Result<(Order, Vec<EventKind>), Invalid> {
        let (items, total) = Order::price(order, prices)?;
        let next = match settlement {
            Settlement::Pending => EventKind::PaymentPending { amount: total },
            Settlement::Paid(payment_id) => {
                EventKind::OrderPaid { method: order.payment, amount: total, payment_id }
            }
        };
        let mut placed = Order {
            id: id.clone(),
            customer: order.customer.clone(),
            items: items.clone(),
            address: order.address.clone(),
            payment: order.payment,
            total,
            workflow: order.workflow.clone(),
            status: OrderStatus::Placed,
            payment_id: None,
            refunded: false,
            delivery_id: None,
            reason: None,
        };
        placed.apply(&next);
        let events = vec![
            EventKind::OrderPlaced {
                customer: order.customer.clone(),
                items,
                address: order.address.clone(),
                payment: order.payment,
                total,
                workflow: order.workflow.clone(),
            },
            next,
        ];
        Ok((placed, events))
    }

    /// Folds one event of this order into it.
    pub fn apply(&mut self, event: &EventKind) {
        if let Some(status) = event.status() {
            self.status = status;
        }
        match event {
            EventKind::OrderPaid { payment_id, .. } => self.payment_id = Some(payment_id.clone()),
            EventKind::OrderInDelivery { delivery_id } => self.delivery_id = Some(delivery_id.clone()),
            EventKind::OrderCanceled { reason } => self.reason = Some(*reason),
            EventKind::PaymentRefunded { .. } => self.refunded = true,
            _ => {}
        }
    }

    /// The events a command produces, or why it is refused.
    pub fn decide(&self, command: Command, workflow: &Workflow) -> Result<Vec<EventKind>, Refusal> {
        match command {
            Command::ConfirmDeposit => {
                if self.status != OrderStatus::PaymentPending {
                    return Err(self.refuse("a deposit can be confirmed only while it is payment_pending"));
                }
                if self.payment != PaymentMethod::BankTransfer {
                    return Err(
                        self.refuse("it is paid by card, and the card payment is taken automatically")
                    );
                }
                Ok(vec![EventKind::OrderPaid {
                    method: self.payment,
                    amount: self.total,
                    payment_id: format!("dep-{}", self.id),
                }])
            }
            Command::Cancel => {
                if self.status == OrderStatus::Canceled {
                    return Err(self.refuse("it is already canceled"));
                }
                if !workflow.allows_cancel(self.status) {
                    return Err(
                        self.refuse(&format!("it can be canceled only until {}", workflow.cancel_until))
                    );
                }
                Ok(vec![EventKind::OrderCanceled { reason: CancelReason::CustomerRequest }])
            }
            Command::ConfirmReceipt => {
                if self.status != OrderStatus::Delivered {
                    return Err(self.refuse("receipt can be confirmed only once it is delivered"));
                }
                Ok(vec![EventKind::OrderClosed])
            }
        }
    }

    /// The status changes that another service's fact leads to. Facts that
    /// arrive when the order can no longer use them change nothing: the
    /// services compensate on their own when they see the cancellation.
    pub fn react(&self, fact: &EventKind, workflow: &Workflow) -> Vec<EventKind> {
        let next = match fact {
            EventKind::StockReserved { .. } => vec![EventKind::OrderReserved],
            EventKind::StockShort { .. } => {
                vec![EventKind::OrderCanceled { reason: CancelReason::OutOfStock }]
            }
            EventKind::DeliveryStarted { delivery_id } => {
                vec![EventKind::OrderInDelivery { delivery_id: delivery_id.clone() }]
            }
            EventKind::DeliveryCompleted { .. } if workflow.receipt => {
                vec![EventKind::OrderDelivered]
            }
            EventKind::DeliveryCompleted { .. } => {
                vec![EventKind::OrderDelivered, EventKind::OrderClosed]
            }
            EventKind::PaymentCaptured { payment_id, amount } => vec![EventKind::OrderPaid {
                method: self.payment,
                amount: *amount,
                payment_id: payment_id.clone(),
            }],
            EventKind::PaymentFailed { .. } => {
                vec![EventKind::OrderCanceled { reason: CancelReason::PaymentDeclined }]
            }
            _ => vec![],
        };
        match next.first().and_then(EventKind::status) {
            Some(first) if self.status.can_become(first) => next,
            _ => vec![],
        }
    }

    fn refuse(&self, rule: &str) -> Refusal {
        Refusal(format!("order {} is {}: {rule}", self.id, self.status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(payment: &str) -> OrderRequest {
        OrderRequest {
            customer: "kim".into(),
            items: vec![ItemRequest { sku: "MUG".into(), qty: 2 }],
            address: "Seoul".into(),
            payment: payment.into(),
            card: Some("4111 1111 1111 1111".into()),
            workflow: None,
        }
    }

    fn placed(payment: &str) -> Order {
        let valid = request(payment).validate("shop").unwrap();
        let id = OrderId::from_number(1);
        let settlement = match valid.payment {
            PaymentMethod::BankTransfer => Settlement::Pending,
            _ => Settlement::Paid("pay-1".into()),
        };
        let (order, events) = Order::place(&id, &valid, &[Money::new(1500).unwrap()], settlement).unwrap();
        assert!(matches!(events[0], EventKind::OrderPlaced { .. }));
        order
    }

    fn with_status(status: OrderStatus) -> Order {
        let mut o = placed("bank_transfer");
        o.status = status;
        o
    }

    #[test]
    fn bank_transfer_waits_for_payment_and_card_is_paid_at_once() {
        let bank = placed("bank_transfer");
        assert_eq!(bank.status, OrderStatus::PaymentPending);
        assert_eq!(bank.total.minor(), 3000);
        let card = placed("card");
        assert_eq!(card.status, OrderStatus::Paid);
        assert_eq!(card.payment_id.as_deref(), Some("pay-1"));
    }

    #[test]
    fn validation_names_the_broken_field() {
        let mut r = request("card");
        r.items[0].qty = 0;
        assert!(r.validate("shop").unwrap_err().0.contains("qty must be at least 1"));
        r.items[0].qty = -3;
        assert!(r.validate("shop").is_err());
        let mut r = request("cash");
        r.card = None;
        assert!(r.validate("shop").unwrap_err().0.contains("payment must be one of"));
        let mut r = request("card");
        r.card = None;
        assert!(r.validate("shop").unwrap_err().0.contains("card number"));
        let mut r = request("card");
        r.items.push(ItemRequest { sku: "MUG".into(), qty: 1 });
        assert!(r.validate("shop").unwrap_err().0.contains("listed twice"));
        let mut r = request("card");
        r.items.clear();
        assert!(r.validate("shop").is_err());
        let mut r = request("card");
        r.address = " ".into();
        assert!(r.validate("shop").is_err());
    }

    #[test]
    fn deposit_is_confirmed_only_while_pending() {
        let wf = Workflow::shop();
        for status in OrderStatus::ALL {
            let result = with_status(status).decide(Command::ConfirmDeposit, &wf);
            assert_eq!(result.is_ok(), status == OrderStatus::PaymentPending, "{status}");
        }
    }

    #[test]
    fn shop_cancel_is_allowed_only_before_the_deposit_is_confirmed() {
        let wf = Workflow::shop();
        for status in OrderStatus::ALL {
            let result = with_status(status).decide(Command::Cancel, &wf);
            let allowed = matches!(status, OrderStatus::Placed | OrderStatus::PaymentPending);
            assert_eq!(result.is_ok(), allowed, "{status}");
        }
        let err = with_status(OrderStatus::Paid).decide(Command::Cancel, &wf).unwrap_err();
        assert!(err.0.contains("only until payment_pending"), "{err}");
    }

    #[test]
    fn a_deferred_card_payment_is_taken_automatically_not_confirmed() {
        let wf = Workflow::shop();
        let mut order = placed("card");
        order.status = OrderStatus::PaymentPending;
        assert!(order.decide(Command::ConfirmDeposit, &wf).unwrap_err().0.contains("taken automatically"));
        let captured = EventKind::PaymentCaptured { payment_id: "p".into(), amount: order.total };
        assert!(matches!(order.react(&captured, &wf)[..], [EventKind::OrderPaid { .. }]));
        let failed = EventKind::PaymentFailed { reason: "declined".into() };
        assert_eq!(
            order.react(&failed, &wf),
            vec![EventKind::OrderCanceled { reason: CancelReason::PaymentDeclined }]
        );
    }

    #[test]
    fn receipt_is_confirmed_only_when_delivered() {
        let wf = Workflow::shop();
        for status in OrderStatus::ALL {
            let result = with_status(status).decide(Command::ConfirmReceipt, &wf);
            assert_eq!(result.is_ok(), status == OrderStatus::Delivered, "{status}");
        }
    }

    #[test]
    fn reactions_follow_the_saga() {
        let wf = Workflow::shop();
        let paid = with_status(OrderStatus::Paid);
        let reserved = EventKind::StockReserved { lines: vec![] };
        assert_eq!(paid.react(&reserved, &wf), vec![EventKind::OrderReserved]);
        let short = EventKind::StockShort { sku: Sku::parse("MUG").unwrap(), requested: 2, available: 1 };
        assert_eq!(
            paid.react(&short, &wf),
            vec![EventKind::OrderCanceled { reason: CancelReason::OutOfStock }]
        );
        let started = EventKind::DeliveryStarted { delivery_id: "d".into() };
        assert_eq!(
            with_status(OrderStatus::Reserved).react(&started, &wf),
            vec![EventKind::OrderInDelivery { delivery_id: "d".into() }]
        );
        let done = EventKind::DeliveryCompleted { delivery_id: "d".into() };
        assert_eq!(with_status(OrderStatus::InDelivery).react(&done, &wf), vec![EventKind::OrderDelivered]);
        let no_receipt = Workflow { receipt: false, ..Workflow::shop() };
        assert_eq!(
            with_status(OrderStatus::InDelivery).react(&done, &no_receipt),
            vec![EventKind::OrderDelivered, EventKind::OrderClosed]
        );
    }

    #[test]
    fn facts_arriving_too_late_change_nothing() {
        let wf = Workflow::shop();
        let canceled = with_status(OrderStatus::Canceled);
        let reserved = EventKind::StockReserved { lines: vec![] };
        assert!(canceled.react(&reserved, &wf).is_empty());
        // A replayed fact does not walk the order back.
        assert!(with_status(OrderStatus::InDelivery).react(&reserved, &wf).is_empty());
    }
}
