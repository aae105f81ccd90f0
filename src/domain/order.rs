//! The order aggregate: what a customer asks for, the rules for each command,
//! and how the order reacts to what the other services report.
//!
//! `decide` and `react` only compute events; `apply` folds an event into the
//! order. The order actor runs them and stores the result, so everything
//! here is testable without a store.

pub use super::request::{ItemRequest, OrderRequest, PaymentMethod, ValidOrder, MAX_ADDRESS_LEN, MAX_LINES};

use super::event::CancelReason;
use super::fold::Fold;
pub use super::fold::Refusal;
use super::workflow::{CheckpointPolicy, ReservationMode};
use super::{CustomerId, EventKind, Invalid, Money, OrderId, OrderStatus, Sku, Workflow};
use serde::{Deserialize, Serialize};

/// One line of an order, priced when the order was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
            units: Vec::new(),
            accepted_by: None,
            delivery_requested: false,
            delivery_id: None,
            leg: None,
            reason: None,
            rejection: None,
        };
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
        let mut events = vec![EventKind::OrderPlaced {
            customer: order.customer.clone(),
            items,
            address: order.address.clone(),
            payment: order.payment,
            total,
            workflow: order.workflow.clone(),
            reservation: workflow.reservation,
        }];
        events.extend(placed.advance(first, workflow));
        Ok((placed, events))
    }

    /// Folds one event of this order into it.
    pub fn apply(&mut self, event: &EventKind) {
        Fold::apply(self, event)
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
                Ok(vec![EventKind::OrderAccepted { by: by.clone() }])
            }
            Command::Reject { by, reason } => {
                self.awaiting_acceptance(workflow)?;
                Ok(vec![EventKind::OrderRejected { by: by.clone(), reason: reason.clone() }])
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
mod tests {
    use super::*;
    use crate::domain::workflow::LegSpec;
    use crate::domain::Acceptance;

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

    /// A hotel: card, rooms reserved after payment, the hotel accepts.
    fn hotel() -> Workflow {
        Workflow {
            name: "hotel".into(),
            payment: vec![PaymentMethod::Card],
            acceptance: Acceptance::Party("hotel".into()),
            legs: vec![],
            receipt: false,
            cancel_until: OrderStatus::Accepted,
            ..Workflow::shop()
        }
    }

    /// Overseas purchase: no reservation, the shop accepts, four legs with a
    /// customs checkpoint that forfeits.
    fn malltail() -> Workflow {
        let leg = |name: &str, checkpoint, explicit_start| LegSpec {
            name: name.into(),
            checkpoint,
            explicit_start,
        };
        Workflow {
            name: "malltail".into(),
            payment: vec![PaymentMethod::Card],
            reservation: ReservationMode::None,
            acceptance: Acceptance::Party("shop".into()),
            legs: vec![
                leg("overseas", false, true),
                leg("customs", true, false),
                leg("domestic", false, false),
            ],
            rejected_checkpoint: CheckpointPolicy::Forfeit,
            receipt: false,
            cancel_until: OrderStatus::Accepted,
            ..Workflow::shop()
        }
    }

    fn place_in(payment: &str, wf: &Workflow) -> (Order, Vec<EventKind>) {
        let valid = request(payment).validate(wf).unwrap();
        let settlement = match valid.payment {
            PaymentMethod::BankTransfer => Settlement::Pending,
            PaymentMethod::None => Settlement::NotNeeded,
            PaymentMethod::Card => Settlement::Paid("pay-1".into()),
        };
        let id = OrderId::from_number(1);
        Order::place(&id, &valid, &[Money::new(1500).unwrap()], settlement, None, wf).unwrap()
    }

    fn placed(payment: &str) -> Order {
        place_in(payment, &Workflow::shop()).0
    }

    fn with_status(status: OrderStatus) -> Order {
        let mut o = placed("bank_transfer");
        o.status = status;
        o
    }

    fn names(events: &[EventKind]) -> Vec<&'static str> {
        events.iter().map(EventKind::name).collect()
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
        let shop = Workflow::shop();
        let mut r = request("card");
        r.items[0].qty = 0;
        assert!(r.validate(&shop).unwrap_err().0.contains("qty must be at least 1"));
        r.items[0].qty = -3;
        assert!(r.validate(&shop).is_err());
        let mut r = request("cash");
        r.card = None;
        assert!(r.validate(&shop).unwrap_err().0.contains("payment must be one of"));
        let mut r = request("card");
        r.card = None;
        assert!(r.validate(&shop).unwrap_err().0.contains("card number"));
        let mut r = request("card");
        r.items.push(ItemRequest { sku: "MUG".into(), qty: 1 });
        assert!(r.validate(&shop).unwrap_err().0.contains("listed twice"));
        let mut r = request("card");
        r.items.clear();
        assert!(r.validate(&shop).is_err(), "a shop order needs items");
        let mut r = request("card");
        r.address = " ".into();
        assert!(r.validate(&shop).is_err());
        assert!(request("none")
            .validate(&shop)
            .unwrap_err()
            .0
            .contains("takes payment bank_transfer or card"));
    }

    #[test]
    fn a_workflow_that_reserves_nothing_takes_orders_without_items() {
        let mut taxi = malltail();
        taxi.payment = vec![PaymentMethod::None];
        let mut r = request("none");
        r.items.clear();
        assert!(r.validate(&taxi).unwrap().lines.is_empty());
    }

    #[test]
    fn deposit_is_confirmed_only_while_pending() {
        let wf = Workflow::shop();
        for status in OrderStatus::ALL {
            let result = with_status(status).decide(&Command::ConfirmDeposit, &wf);
            assert_eq!(result.is_ok(), status == OrderStatus::PaymentPending, "{status}");
        }
    }

    #[test]
    fn shop_cancel_is_allowed_only_before_the_deposit_is_confirmed() {
        let wf = Workflow::shop();
        for status in OrderStatus::ALL {
            let result = with_status(status).decide(&Command::Cancel, &wf);
            let allowed = matches!(status, OrderStatus::Placed | OrderStatus::PaymentPending);
            assert_eq!(result.is_ok(), allowed, "{status}");
        }
        let err = with_status(OrderStatus::Paid).decide(&Command::Cancel, &wf).unwrap_err();
        assert!(err.to_string().contains("only until payment_pending"), "{err}");
    }

    #[test]
    fn a_deferred_card_payment_is_taken_automatically_not_confirmed() {
        let wf = Workflow::shop();
        let mut order = placed("card");
        order.status = OrderStatus::PaymentPending;
        assert!(order
            .decide(&Command::ConfirmDeposit, &wf)
            .unwrap_err()
            .to_string()
            .contains("taken automatically"));
        let captured = EventKind::PaymentCaptured { payment_id: "p".into(), amount: order.total };
        assert!(matches!(order.react(&captured, &wf)[..], [EventKind::OrderPaid { .. }]));
        let failed = EventKind::PaymentFailed { reason: "declined".into() };
        assert_eq!(
            order.react(&failed, &wf),
            vec![EventKind::OrderCanceled { reason: CancelReason::PaymentDeclined }]
        );
    }

    #[test]
    fn the_seller_cancels_until_the_workflow_says_and_not_at_all_where_it_says_nothing() {
        let wf = Workflow::shop();
        let canceled = EventKind::OrderCanceled { reason: CancelReason::SellerRequest };
        assert_eq!(
            with_status(OrderStatus::InDelivery).decide(&Command::SellerCancel, &wf),
            Ok(vec![canceled])
        );
        let late = with_status(OrderStatus::Delivered).decide(&Command::SellerCancel, &wf).unwrap_err();
        assert!(late.to_string().contains("only until in_delivery"), "{late}");
        let nobody = Workflow { seller_cancel_until: None, ..Workflow::shop() };
        let refused = with_status(OrderStatus::Paid).decide(&Command::SellerCancel, &nobody).unwrap_err();
        assert!(refused.to_string().contains("sellers do not cancel"), "{refused}");
        assert!(CancelReason::SellerRequest.refunds());
    }

    #[test]
    fn receipt_is_confirmed_only_when_delivered() {
        let wf = Workflow::shop();
        for status in OrderStatus::ALL {
            let result = with_status(status).decide(&Command::ConfirmReceipt, &wf);
            assert_eq!(result.is_ok(), status == OrderStatus::Delivered, "{status}");
        }
    }

    #[test]
    fn once_reserved_an_automatically_accepted_order_asks_for_delivery() {
        let wf = Workflow::shop();
        let mut paid = with_status(OrderStatus::Paid);
        let reserved = EventKind::StockReserved { lines: vec![], units: vec![] };
        let next = paid.react(&reserved, &wf);
        assert_eq!(names(&paid.advance(next, &wf)), ["order_reserved", "delivery_requested"]);
        assert!(paid.delivery_requested);
        assert!(paid.advance(vec![], &wf).is_empty(), "asked once");
    }

    #[test]
    fn a_party_accepts_exactly_once_and_the_loser_is_told_it_is_taken() {
        let wf = hotel();
        let (mut booking, events) = place_in("card", &wf);
        assert_eq!(names(&events), ["order_placed", "order_paid"]);
        let refused = booking.decide(&Command::Accept { by: "hotel".into() }, &wf).unwrap_err();
        assert!(matches!(refused, Refusal::NotAllowed(_)), "not reserved yet: {refused}");
        let next = booking.react(&EventKind::StockReserved { lines: vec![], units: vec![] }, &wf);
        assert_eq!(names(&booking.advance(next, &wf)), ["order_reserved"], "the hotel must accept first");
        let accept = Command::Accept { by: "Grand Hotel".into() };
        let events = booking.decide(&accept, &wf).unwrap();
        assert_eq!(names(&booking.advance(events, &wf)), ["order_accepted"], "no legs: nothing to deliver");
        assert_eq!(booking.accepted_by.as_deref(), Some("Grand Hotel"));
        for again in [accept, Command::Reject { by: "other".into(), reason: "full".into() }] {
            assert!(matches!(booking.decide(&again, &wf), Err(Refusal::Taken(_))));
        }
        assert!(booking.decide(&Command::Cancel, &wf).is_ok(), "a confirmed booking may still be canceled");
    }

    #[test]
    fn the_shop_does_not_accept_by_hand() {
        let err =
            with_status(OrderStatus::Reserved).decide(&Command::Accept { by: "x".into() }, &Workflow::shop());
        assert!(err.unwrap_err().to_string().contains("accepted automatically"));
    }

    #[test]
    fn legs_move_the_order_along_and_a_rejected_checkpoint_follows_the_policy() {
        let wf = malltail();
        let (mut order, _) = place_in("card", &wf);
        assert!(order.ready_for_acceptance(&wf), "nothing to reserve: paid is enough");
        let events = order.decide(&Command::Accept { by: "shop".into() }, &wf).unwrap();
        assert_eq!(names(&order.advance(events, &wf)), ["order_accepted", "delivery_requested"]);
        let leg = |leg, name: &str| EventKind::LegStarted { delivery_id: "d".into(), leg, name: name.into() };
        for (i, name) in ["overseas", "customs"].into_iter().enumerate() {
            let next = order.react(&leg(i as u32, name), &wf);
            assert_eq!(names(&order.advance(next, &wf)), ["order_in_delivery"]);
        }
        assert!(order.react(&leg(0, "overseas"), &wf).is_empty(), "an old leg does not come back");
        assert!(order.decide(&Command::Cancel, &wf).is_err(), "no cancel once shipping started");
        let rejected = EventKind::LegRejected {
            delivery_id: "d".into(),
            leg: 1,
            name: "customs".into(),
            reason: "x".into(),
        };
        assert_eq!(
            order.react(&rejected, &wf),
            vec![EventKind::OrderCanceled { reason: CancelReason::Forfeited }]
        );
        let refund = Workflow { rejected_checkpoint: CheckpointPolicy::Refund, ..wf };
        assert_eq!(
            order.react(&rejected, &refund),
            vec![EventKind::OrderCanceled { reason: CancelReason::CheckpointRejected }]
        );
    }

    #[test]
    fn delivery_completion_closes_unless_receipt_is_needed() {
        let wf = Workflow::shop();
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
        let reserved = EventKind::StockReserved { lines: vec![], units: vec![] };
        assert!(with_status(OrderStatus::Canceled).react(&reserved, &wf).is_empty());
        assert!(with_status(OrderStatus::InDelivery).react(&reserved, &wf).is_empty());
    }
}
