//! The order aggregate: what a customer asks for, the rules for each command,
//! and how the order reacts to what the other services report.
//!
//! `decide` and `react` only compute events; `apply` folds an event into the
//! order. The order actor runs them and stores the result, so everything
//! here is testable without a store.

pub use super::request::{ItemRequest, OrderRequest, PaymentMethod, ValidOrder, MAX_ADDRESS_LEN, MAX_LINES};

use super::details::Details;
use super::event::CancelReason;
use super::fold::Fold;
pub use super::fold::Refusal;
use super::stay::Stay;
use super::workflow::{CheckpointPolicy, Decline, ReservationMode};
use super::{CustomerId, EventKind, Invalid, Money, OrderId, OrderStatus, Sku, Workflow};
use serde::{Deserialize, Serialize};

/// One line of an order, priced when the order was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderLine {
    pub sku: Sku,
    pub qty: u32,
    pub unit_price: Money,
}

/// How an order's payment stands when it is placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Paid: the authorisation's id.
    Paid(String),
    /// To be paid later: a bank transfer, or a card payment deferred while
    /// the gateway is unavailable.
    Pending,
    /// Nothing to pay (payment `none`).
    NotNeeded,
}

/// Commands a party can give an existing order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The seller confirms the bank-transfer deposit.
    ConfirmDeposit,
    /// The customer cancels.
    Cancel,
    /// The seller cancels, refunding what was paid.
    SellerCancel,
    /// The order's time at `status` is up (its workflow's `expire`).
    Expire { status: OrderStatus },
    /// The customer confirms receipt of the goods.
    ConfirmReceipt,
    /// The fulfilling party (hotel, shop, driver) takes the order.
    Accept { by: String },
    /// The fulfilling party turns the order down.
    Reject { by: String, reason: String },
}

impl Command {
    /// The step's name, as recorded with who took it.
    pub fn name(&self) -> &'static str {
        match self {
            Command::ConfirmDeposit => "confirm_deposit",
            Command::Cancel => "cancel",
            Command::SellerCancel => "seller_cancel",
            Command::Expire { .. } => "expire",
            Command::ConfirmReceipt => "receipt",
            Command::Accept { .. } => "accept",
            Command::Reject { .. } => "reject",
        }
    }

    /// Whether its own events do not say who took it already (accepting
    /// and rejecting name their party).
    pub fn is_a_step(&self) -> bool {
        !matches!(self, Command::Accept { .. } | Command::Reject { .. } | Command::Expire { .. })
    }
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
    /// Named units reserved for it (the assigned driver).
    pub units: Vec<String>,
    pub accepted_by: Option<String>,
    pub delivery_requested: bool,
    pub delivery_id: Option<String>,
    /// The delivery leg under way.
    pub leg: Option<u32>,
    pub reason: Option<CancelReason>,
    /// Why it was rejected.
    pub rejection: Option<String>,
    // Grown since format 1: new fields go at the end (see store::codec).
    /// The business's own details, as sent.
    pub details: Option<Details>,
    /// The dates its unit is booked for (a hotel stay).
    pub stay: Option<Stay>,
    /// The parties that declined it while it stayed open (a taxi call).
    pub declined: Vec<String>,
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

    /// Places `order` as `id`: the new order and the events that record it,
    /// with the steps that follow at once. `units` are what was reserved at
    /// placement, for a workflow that reserves then.
    pub fn place(
        id: &OrderId,
        order: &ValidOrder,
        prices: &[Money],
        settlement: Settlement,
        reserved: Option<Vec<String>>,
        workflow: &Workflow,
    ) -> Result<(Order, Vec<EventKind>), Invalid> {
        let (items, total) = Order::price(order, prices)?;
        let placing = EventKind::OrderPlaced {
            customer: order.customer.clone(),
            items,
            address: order.address.clone(),
            payment: order.payment,
            total,
            workflow: order.workflow.clone(),
            reservation: workflow.reservation,
            details: order.details.clone(),
            stay: order.stay,
            lang: Some(order.lang.clone()),
        };
        let mut placed = Order::placed(id, &placing).expect("an order_placed event places an order");
        let mut first = Vec::new();
        match settlement {
            Settlement::Pending => first.push(EventKind::PaymentPending { amount: total }),
            Settlement::Paid(payment_id) => {
                first.push(EventKind::OrderPaid { method: order.payment, amount: total, payment_id })
            }
            Settlement::NotNeeded => {}
        }
        if let Some(units) = reserved {
            first.push(EventKind::OrderReserved { units });
        }
        let mut events = vec![placing];
        events.extend(placed.advance(first, workflow));
        Ok((placed, events))
    }

    /// The order an `order_placed` event starts; `None` for any other event.
    fn placed(id: &OrderId, placing: &EventKind) -> Option<Order> {
        let EventKind::OrderPlaced {
            customer, items, address, payment, total, workflow, details, stay, ..
        } = placing
        else {
            return None;
        };
        Some(Order {
            id: id.clone(),
            customer: customer.clone(),
            items: items.clone(),
            address: address.clone(),
            payment: *payment,
            total: *total,
            workflow: workflow.clone(),
            status: OrderStatus::Placed,
            payment_id: None,
            refunded: false,
            units: Vec::new(),
            accepted_by: None,
            delivery_requested: false,
            delivery_id: None,
            leg: None,
            reason: None,
            rejection: None,
            details: details.clone(),
            stay: *stay,
            declined: Vec::new(),
        })
    }

    /// Folds one event of this order into it.
    pub fn apply(&mut self, event: &EventKind) {
        Fold::apply(self, event)
    }

    /// The order as its events in the log make it: from its placing, each
    /// later event folded once; `None` if it was never placed. The stored
    /// record must always equal this (the crash tests check it), so that
    /// the log alone can rebuild the order service's state.
    pub fn replay<'a>(id: &OrderId, events: impl IntoIterator<Item = &'a EventKind>) -> Option<Order> {
        let mut events = events.into_iter().skip_while(|e| !matches!(e, EventKind::OrderPlaced { .. }));
        let mut order = Order::placed(id, events.next()?)?;
        order.apply_all(events);
        Some(order)
    }
}

impl Fold for Order {
    fn apply(&mut self, event: &EventKind) {
        if let Some(status) = event.status() {
            self.status = status;
        }
        match event {
            EventKind::OrderPaid { payment_id, .. } => self.payment_id = Some(payment_id.clone()),
            EventKind::OrderReserved { units } => self.units = units.clone(),
            EventKind::OrderAccepted { by } => self.accepted_by = Some(by.clone()),
            EventKind::OrderRejected { reason, .. } | EventKind::LegRejected { reason, .. } => {
                self.rejection = Some(reason.clone())
            }
            EventKind::DeliveryRequested { .. } => self.delivery_requested = true,
            EventKind::OrderInDelivery { delivery_id, leg, .. } => {
                self.delivery_id = Some(delivery_id.clone());
                self.leg = Some(*leg);
            }
            EventKind::OrderCanceled { reason } => self.reason = Some(*reason),
            EventKind::OrderDeclined { by, .. } => self.declined.push(by.clone()),
            EventKind::PaymentRefunded { .. } => self.refunded = true,
            _ => {}
        }
    }
}

impl Order {
    /// Applies `events` and whatever follows from them at once (asking for
    /// delivery once the order is ready and accepted); returns them all.
    pub fn advance(&mut self, events: Vec<EventKind>, workflow: &Workflow) -> Vec<EventKind> {
        let mut all = events;
        for e in &all {
            self.apply(e);
        }
        if let Some(request) = self.delivery_request(workflow) {
            self.apply(&request);
            all.push(request);
        }
        all
    }

    /// Whether every step before acceptance is done: paid (if anything is
    /// to be paid) and reserved (if anything is reserved).
    pub fn ready_for_acceptance(&self, workflow: &Workflow) -> bool {
        let reserves = workflow.reservation != ReservationMode::None && !self.items.is_empty();
        let expected = match (reserves, self.payment) {
            (true, _) => OrderStatus::Reserved,
            (false, PaymentMethod::None) => OrderStatus::Placed,
            (false, _) => OrderStatus::Paid,
        };
        self.status == expected
    }

    /// The delivery request due now, if any.
    fn delivery_request(&self, workflow: &Workflow) -> Option<EventKind> {
        let accepted = self.status == OrderStatus::Accepted
            || (workflow.accepts_automatically() && self.ready_for_acceptance(workflow));
        (accepted && !self.delivery_requested && !workflow.legs.is_empty())
            .then(|| EventKind::DeliveryRequested { legs: workflow.legs.clone() })
    }

    /// The events a command produces, or why it is refused.
    pub fn decide(&self, command: &Command, workflow: &Workflow) -> Result<Vec<EventKind>, Refusal> {
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
                if self.status.is_terminal() {
                    return Err(self.refuse("it is over"));
                }
                if !workflow.allows_cancel(self.status) {
                    return Err(
                        self.refuse(&format!("it can be canceled only until {}", workflow.cancel_until))
                    );
                }
                Ok(vec![EventKind::OrderCanceled { reason: CancelReason::CustomerRequest }])
            }
            Command::SellerCancel => {
                if self.status.is_terminal() {
                    return Err(self.refuse("it is over"));
                }
                match workflow.seller_cancel_until {
                    None => {
                        Err(self
                            .refuse(&format!("sellers do not cancel orders of workflow {}", workflow.name)))
                    }
                    Some(until) if !workflow.allows_seller_cancel(self.status) => {
                        Err(self.refuse(&format!("the seller can cancel it only until {until}")))
                    }
                    Some(_) => Ok(vec![EventKind::OrderCanceled { reason: CancelReason::SellerRequest }]),
                }
            }
            Command::Expire { status } => match self.status == *status {
                true => Ok(vec![EventKind::OrderCanceled { reason: CancelReason::Expired }]),
                false => Err(self.refuse(&format!("it is no longer {status}"))),
            },
            Command::ConfirmReceipt => {
                if self.status != OrderStatus::Delivered {
                    return Err(self.refuse("receipt can be confirmed only once it is delivered"));
                }
                Ok(vec![EventKind::OrderClosed])
            }
            Command::Accept { by } => {
                self.awaiting_acceptance(workflow)?;
                self.not_declined_by(by)?;
                Ok(vec![EventKind::OrderAccepted { by: by.clone() }])
            }
            Command::Reject { by, reason } => {
                self.awaiting_acceptance(workflow)?;
                self.not_declined_by(by)?;
                let (by, reason) = (by.clone(), reason.clone());
                Ok(vec![match workflow.decline {
                    Decline::Ends => EventKind::OrderRejected { by, reason },
                    Decline::KeepsOpen => EventKind::OrderDeclined { by, reason },
                }])
            }
        }
    }

    /// Whether the order lets a step of its delivery be taken: not when it
    /// has ended (canceled, rejected, closed). The delivery service decides
    /// the rest (which leg, in what state).
    pub fn allows_delivery_step(&self) -> Result<(), Refusal> {
        match self.status.is_terminal() {
            true => Err(self.refuse("its delivery cannot go on")),
            false => Ok(()),
        }
    }

    /// A party that declined an open order is not offered it again.
    fn not_declined_by(&self, by: &str) -> Result<(), Refusal> {
        match self.declined.iter().any(|d| d == by) {
            true => Err(self.refuse(&format!("{by} declined it"))),
            false => Ok(()),
        }
    }

    /// Refuses unless the order waits for its party to accept or reject it.
    fn awaiting_acceptance(&self, workflow: &Workflow) -> Result<(), Refusal> {
        if workflow.accepts_automatically() {
            return Err(
                self.refuse(&format!("orders of workflow {} are accepted automatically", workflow.name))
            );
        }
        if self.accepted_by.is_some() || self.status == OrderStatus::Rejected {
            return Err(Refusal::Taken(format!("order {}: {}", self.id, workflow.taken_message)));
        }
        if !self.ready_for_acceptance(workflow) {
            return Err(self.refuse("it is not waiting for acceptance"));
        }
        Ok(())
    }

    /// The status changes that another service's fact leads to. Facts that
    /// arrive when the order can no longer use them change nothing: the
    /// services compensate on their own when they see the cancellation.
    pub fn react(&self, fact: &EventKind, workflow: &Workflow) -> Vec<EventKind> {
        let next = match fact {
            EventKind::StockReserved { units, .. } => vec![EventKind::OrderReserved { units: units.clone() }],
            EventKind::StockShort { .. } => {
                vec![EventKind::OrderCanceled { reason: CancelReason::OutOfStock }]
            }
            EventKind::PaymentCaptured { payment_id, amount } => vec![EventKind::OrderPaid {
                method: self.payment,
                amount: *amount,
                payment_id: payment_id.clone(),
            }],
            EventKind::PaymentFailed { .. } => {
                vec![EventKind::OrderCanceled { reason: CancelReason::PaymentDeclined }]
            }
            EventKind::LegStarted { delivery_id, leg, name } if self.leg.is_none_or(|l| *leg > l) => {
                vec![EventKind::OrderInDelivery {
                    delivery_id: delivery_id.clone(),
                    leg: *leg,
                    name: name.clone(),
                }]
            }
            EventKind::LegRejected { .. } => {
                let reason = match workflow.rejected_checkpoint {
                    CheckpointPolicy::Refund => CancelReason::CheckpointRejected,
                    CheckpointPolicy::Forfeit => CancelReason::Forfeited,
                };
                vec![EventKind::OrderCanceled { reason }]
            }
            EventKind::DeliveryCompleted { .. } if workflow.receipt => vec![EventKind::OrderDelivered],
            EventKind::DeliveryCompleted { .. } => vec![EventKind::OrderDelivered, EventKind::OrderClosed],
            _ => vec![],
        };
        match next.first().and_then(EventKind::status) {
            Some(first) if self.status.can_become(first) => next,
            _ => vec![],
        }
    }

    fn refuse(&self, rule: &str) -> Refusal {
        Refusal::NotAllowed(format!("order {} is {}: {rule}", self.id, self.status))
    }
}

#[cfg(test)]
mod tests;
