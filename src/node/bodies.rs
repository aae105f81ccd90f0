//! What leaves the process: the bodies the embedding API returns and the
//! HTTP API serialises, as types of their own.
//!
//! Stored records are the services' business (their encoding, their
//! indexes, what they keep between steps, such as a deferred payment's
//! card); these are the contract with callers. Each is built from its record
//! by `From`, so a change to what is stored changes no answer unless it is
//! written here.

use crate::domain::delivery::{DeliveryStatus, LegState};
use crate::domain::details::Details;
use crate::domain::inventory::ReservationState;
use crate::domain::payment::PaymentStatus;
use crate::domain::stay::Stay;
use crate::domain::{
    self, CancelReason, CustomerId, LegSpec, Money, OrderId, OrderLine, OrderStatus, PaymentMethod, Seq, Sku,
};
use serde::Serialize;

/// An order, as its command side knows it (always current).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
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
    /// The business's own details, as sent.
    pub details: Option<Details>,
    /// The dates it books (a hotel stay): `{"from": …, "to": …}`.
    pub stay: Option<Stay>,
    /// The parties that declined it while it stayed open (a taxi call).
    pub declined: Vec<String>,
}

impl From<domain::Order> for Order {
    fn from(o: domain::Order) -> Self {
        Order {
            id: o.id,
            customer: o.customer,
            items: o.items,
            address: o.address,
            payment: o.payment,
            total: o.total,
            workflow: o.workflow,
            status: o.status,
            payment_id: o.payment_id,
            refunded: o.refunded,
            units: o.units,
            accepted_by: o.accepted_by,
            delivery_requested: o.delivery_requested,
            delivery_id: o.delivery_id,
            leg: o.leg,
            reason: o.reason,
            rejection: o.rejection,
            details: o.details,
            stay: o.stay,
            declined: o.declined,
        }
    }
}

/// An order's payment. Never the card number: only its last four digits,
/// and whether a card is still on file (a deferred payment not yet taken).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Payment {
    pub payment_id: String,
    pub method: PaymentMethod,
    pub amount: Money,
    pub state: PaymentStatus,
    pub card_last4: Option<String>,
    pub card_on_file: bool,
    /// Failed attempts at a deferred payment.
    pub attempts: u32,
}

impl From<domain::payment::PaymentRecord> for Payment {
    fn from(r: domain::payment::PaymentRecord) -> Self {
        Payment {
            payment_id: r.payment_id,
            method: r.method,
            amount: r.amount,
            state: r.state,
            card_last4: r.card_last4,
            card_on_file: r.card_token.is_some(),
            attempts: r.attempts,
        }
    }
}

/// A product of the catalog and what is free of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Product {
    pub sku: Sku,
    pub name: String,
    pub price: Money,
    /// Units on hand and not reserved by any order.
    pub stock: u64,
    /// For a product made of named units: the free ones (for a dated
    /// pool, every unit in service: see its availability for dates).
    pub units: Vec<String>,
    /// Named units taken out of service.
    pub out_of_service: Vec<String>,
}

impl From<domain::Product> for Product {
    fn from(p: domain::Product) -> Self {
        let out_of_service = p.out_of_service;
        Product { sku: p.sku, name: p.name, price: p.price, stock: p.stock, units: p.units, out_of_service }
    }
}

/// The units of a pool free for a range of dates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Availability {
    pub sku: Sku,
    /// The range asked about: `{"from": …, "to": …}`.
    #[serde(flatten)]
    pub stay: Stay,
    /// The units free for the whole range, in pool order.
    pub free: Vec<String>,
}

/// A webhook subscription. Never its secret: only whether it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Subscription {
    pub id: u64,
    pub url: String,
    pub workflow: Option<String>,
    pub party: Option<String>,
    pub customer: Option<CustomerId>,
    pub events: Vec<OrderStatus>,
    /// Deliveries carry `Fulfil-Signature`.
    pub signed: bool,
    /// Who made it.
    pub owner: String,
    /// The language its deliveries are worded in, if it chose one.
    pub lang: Option<String>,
}

impl From<domain::subscription::Subscription> for Subscription {
    fn from(s: domain::subscription::Subscription) -> Self {
        let signed = s.secret.is_some();
        Subscription {
            id: s.id,
            url: s.url,
            workflow: s.workflow,
            party: s.party,
            customer: s.customer,
            events: s.events,
            signed,
            owner: s.owner,
            lang: s.lang,
        }
    }
}

/// An order's delivery along its legs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: String,
    pub order_id: OrderId,
    pub state: DeliveryStatus,
    pub legs: Vec<LegSpec>,
    /// The leg under way or next to start.
    pub current: u32,
    pub leg_state: LegState,
}

impl From<domain::delivery::Delivery> for Delivery {
    fn from(d: domain::delivery::Delivery) -> Self {
        Delivery {
            id: d.id,
            order_id: d.order_id,
            state: d.state,
            legs: d.legs,
            current: d.current,
            leg_state: d.leg_state,
        }
    }
}

/// What the inventory holds for an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Reservation {
    pub lines: Vec<(Sku, u32)>,
    /// Named units taken, if the products have them.
    pub units: Vec<String>,
    pub state: ReservationState,
    /// The dates its units are booked for.
    pub stay: Option<Stay>,
}

impl From<domain::inventory::Reservation> for Reservation {
    fn from(r: domain::inventory::Reservation) -> Self {
        Reservation { lines: r.lines, units: r.units, state: r.state, stay: r.stay }
    }
}

/// An event a service failed on, set aside for an operator. Serialised as
/// the record is (a test keeps it so), so the document describes both with
/// the record's schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub id: u64,
    /// The service that failed on the event.
    pub service: String,
    /// The event's sequence number in the log.
    pub seq: Seq,
    pub order_id: OrderId,
    /// The event's kind.
    pub event: String,
    /// The last failure.
    pub error: String,
    /// Failures in a row before it was set aside.
    pub attempts: u32,
    /// When it was set aside (RFC 3339).
    pub at: String,
}

impl From<crate::store::DeadLetter> for DeadLetter {
    fn from(l: crate::store::DeadLetter) -> Self {
        DeadLetter {
            id: l.id,
            service: l.service,
            seq: l.seq,
            order_id: l.order_id,
            event: l.event,
            error: l.error,
            attempts: l.attempts,
            at: l.at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The HTTP API answered with the records themselves before these
    /// bodies existed; it must answer the same (what records keep only for
    /// the services, such as whether a product is a pool, stays inside).
    #[test]
    fn bodies_serialise_as_the_records_did() {
        fn same<R: serde::Serialize + Clone, B: serde::Serialize + From<R>>(record: R) {
            let mut before = serde_json::to_value(record.clone()).unwrap();
            before.as_object_mut().unwrap().remove("pool");
            assert_eq!(serde_json::to_value(B::from(record)).unwrap(), before);
        }
        let order = OrderId::from_number(7);
        let legs = vec![LegSpec { name: "ride".into(), checkpoint: false, explicit_start: false }];
        let mut delivery = domain::delivery::Delivery::open(&order);
        delivery.advance(vec![domain::EventKind::DeliveryRequested { legs }]);
        same::<_, Delivery>(delivery);
        let product = domain::NewProduct {
            sku: "DRV".into(),
            name: "Drivers".into(),
            price: 100,
            stock: None,
            units: vec!["kim".into()],
        };
        same::<_, Product>(product.validate().unwrap());
        let reservation = domain::inventory::Reservation {
            lines: vec![(Sku::parse("DRV").unwrap(), 1)],
            units: vec!["kim".into()],
            state: ReservationState::Reserved,
            stay: None,
        };
        same::<_, Reservation>(reservation);
        let request: crate::domain::OrderRequest = serde_json::from_value(serde_json::json!({
            "customer": "kim", "items": [{"sku": "DRV", "qty": 1}], "address": "Seoul", "payment": "bank_transfer"
        }))
        .unwrap();
        let wf = domain::Workflow::shop();
        let valid = request.validate(&wf).unwrap();
        let (placed, _) =
            domain::Order::place(&order, &valid, &[Money::ZERO], domain::Settlement::Pending, None, &wf)
                .unwrap();
        same::<_, Order>(placed);
        let letter = crate::store::DeadLetter {
            id: 3,
            service: "delivery".into(),
            seq: 9,
            order_id: order.clone(),
            event: "OrderAccepted".into(),
            error: "panicked".into(),
            attempts: 3,
            at: "2026-11-30T00:00:00Z".into(),
        };
        same::<_, DeadLetter>(letter);
    }

    #[test]
    fn a_payment_body_never_carries_the_card() {
        let order = OrderId::from_number(1);
        let record =
            domain::payment::PaymentRecord::deferred(&order, Money::ZERO, "4111111111111111", "1111", 0);
        let body = Payment::from(record);
        assert!(body.card_on_file);
        let json = serde_json::to_string(&body).unwrap();
        assert!(!json.contains("4111111111111111") && json.contains("1111"), "{json}");
    }
}

/// A workflow as parties and consoles see it: its statuses as it names
/// them, and who takes each step. Never its messages or limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Workflow {
    pub name: String,
    /// Whether it is the one an order that names none gets.
    pub default: bool,
    /// The language of its messages.
    pub lang: String,
    pub payment: Vec<PaymentMethod>,
    /// Whether its orders have dates (`from`, `to`).
    pub dated: bool,
    /// Every status, in lifecycle order, with the workflow's name for it.
    pub statuses: Vec<StatusName>,
    /// Who accepts (and may reject) its orders; none: they go on by
    /// themselves.
    pub acceptance: Option<String>,
    /// Who confirms a bank-transfer deposit, when it takes transfers.
    pub confirms_deposit: Option<String>,
    /// Its delivery legs, in order, and who takes each.
    pub legs: Vec<WorkflowLeg>,
    /// Whether the customer confirms receipt (`closed`).
    pub receipt: bool,
    /// The last status at which the customer may cancel.
    pub cancel_until: OrderStatus,
    /// Whether whoever asked may list its orders by status (a party's
    /// work list; a customer lists only their own orders).
    pub listed: bool,
}

/// A status and the workflow's name for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StatusName {
    pub status: OrderStatus,
    pub label: String,
}

/// A delivery leg and the party that takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WorkflowLeg {
    pub name: String,
    pub party: String,
    /// Whether its party may reject at it (customs).
    pub checkpoint: bool,
    /// Whether its party starts it (else it starts when the one before ends).
    pub explicit_start: bool,
}

impl Workflow {
    /// Every workflow of `workflows`, each saying whether `may_list` lets
    /// the caller list its orders.
    pub fn all_of(
        workflows: &domain::Workflows,
        may_list: impl Fn(&domain::Workflow) -> bool,
    ) -> Vec<Workflow> {
        workflows.all().map(|w| Workflow::of(w, w.name == workflows.default_name(), may_list(w))).collect()
    }

    pub fn of(w: &domain::Workflow, default: bool, listed: bool) -> Workflow {
        use domain::access::Step;
        let transfer = w.allows_payment(PaymentMethod::BankTransfer);
        Workflow {
            name: w.name.clone(),
            default,
            lang: w.lang.clone(),
            payment: w.payment.clone(),
            dated: w.dated,
            statuses: OrderStatus::ALL
                .iter()
                .map(|&status| StatusName { status, label: w.label(status) })
                .collect(),
            acceptance: w.acceptance_role().map(str::to_owned),
            confirms_deposit: transfer.then(|| w.party_for(&Step::ConfirmDeposit).to_owned()),
            legs: w
                .legs
                .iter()
                .map(|l| WorkflowLeg {
                    name: l.name.clone(),
                    party: w.party_for(&Step::Leg(l.name.clone())).to_owned(),
                    checkpoint: l.checkpoint,
                    explicit_start: l.explicit_start,
                })
                .collect(),
            receipt: w.receipt,
            cancel_until: w.cancel_until,
            listed,
        }
    }
}
