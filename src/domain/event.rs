//! Events: the durable record of every state change.
//!
//! Each event carries the order id as its correlation key, its own id (the
//! log sequence number), the id of the event that caused it and a timestamp.
//! The order actor alone writes the events that change an order's status
//! ([`EventKind::status`]); the other services write facts about their own
//! domain (stock reserved, payment refunded, delivery started) that the order
//! actor reacts to.

use super::details::Details;
use super::stay::Stay;
use super::workflow::{LegSpec, ReservationMode};
use super::{Money, OrderId, OrderLine, OrderStatus, PaymentMethod, Sku};
use serde::{Deserialize, Serialize};

/// A position in the event log; also the event's id. The first event is 1.
pub type Seq = u64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: Seq,
    pub order_id: OrderId,
    /// The event this one reacts to; `None` for a direct command.
    pub caused_by: Option<Seq>,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub kind: EventKind,
}

/// Why an order was canceled; shown as `reason` in the status view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The customer asked for it.
    CustomerRequest,
    /// Stock was short when the reservation was attempted.
    OutOfStock,
    /// A deferred card payment was declined when it was finally taken.
    PaymentDeclined,
    /// A checkpoint (customs) rejected the goods; the payment is refunded.
    CheckpointRejected,
    /// A checkpoint rejected the goods, which are discarded; nothing is
    /// refunded (the customer's fault).
    Forfeited,
    /// The seller canceled it; what was paid is refunded.
    SellerRequest,
    /// It stayed too long at a status its workflow lets expire (unpaid).
    Expired,
}

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::CustomerRequest => "customer_request",
            CancelReason::OutOfStock => "out_of_stock",
            CancelReason::PaymentDeclined => "payment_declined",
            CancelReason::CheckpointRejected => "checkpoint_rejected",
            CancelReason::Forfeited => "forfeited",
            CancelReason::SellerRequest => "seller_request",
            CancelReason::Expired => "expired",
        }
    }

    /// Whether a payment already taken is given back.
    pub fn refunds(self) -> bool {
        self != CancelReason::Forfeited
    }
}

/// The fact an event records. Stored with bincode, so variants are only ever
/// appended at the end (the codec's version byte covers anything bigger).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EventKind {
    // --- written by the order actor; each sets the order's status ---
    OrderPlaced {
        customer: super::CustomerId,
        items: Vec<OrderLine>,
        address: String,
        payment: PaymentMethod,
        total: Money,
        workflow: String,
        /// How the workflow reserves: the inventory acts only on orders
        /// that reserve after payment.
        reservation: ReservationMode,
        // Grown since format 1: new fields go at the end (see store::codec).
        /// The business's own details, as sent.
        details: Option<Details>,
        /// The dates it books its unit for.
        stay: Option<Stay>,
        /// The language of the customer's messages.
        lang: Option<String>,
    },
    PaymentPending {
        amount: Money,
    },
    OrderPaid {
        method: PaymentMethod,
        amount: Money,
        payment_id: String,
    },
    OrderReserved {
        /// The units reserved by name (the assigned driver), if any.
        units: Vec<String>,
    },
    OrderAccepted {
        by: String,
    },
    OrderRejected {
        by: String,
        reason: String,
    },
    /// A delivery leg started.
    OrderInDelivery {
        delivery_id: String,
        leg: u32,
        name: String,
    },
    OrderDelivered,
    OrderClosed,
    OrderCanceled {
        reason: CancelReason,
    },

    // --- facts written by the other services ---
    StockReserved {
        lines: Vec<(Sku, u32)>,
        /// Named units taken, for products made of units.
        units: Vec<String>,
    },
    StockShort {
        sku: Sku,
        requested: u32,
        available: u64,
    },
    StockReleased {
        lines: Vec<(Sku, u32)>,
    },
    PaymentRefunded {
        amount: Money,
    },
    /// The order is ready to be delivered along these legs.
    DeliveryRequested {
        legs: Vec<LegSpec>,
    },
    LegStarted {
        delivery_id: String,
        leg: u32,
        name: String,
    },
    LegCompleted {
        delivery_id: String,
        leg: u32,
        name: String,
    },
    /// A checkpoint leg rejected the goods.
    LegRejected {
        delivery_id: String,
        leg: u32,
        name: String,
        reason: String,
    },
    /// The last leg completed.
    DeliveryCompleted {
        delivery_id: String,
    },
    /// A deferred card payment was taken.
    PaymentCaptured {
        payment_id: String,
        amount: Money,
    },
    /// A deferred card payment was declined.
    PaymentFailed {
        reason: String,
    },

    // --- appended since format 1 (variants are only ever appended) ---
    /// A party turned down an order that stays open for the others (a
    /// driver declining a taxi call); it is not offered to that party again.
    OrderDeclined {
        by: String,
        reason: String,
    },
    /// Who took a step (confirmed the deposit, canceled, started a leg):
    /// written with the step's own events, so the order's history says who
    /// did what. Not written when nobody is authenticated (an open node).
    Acted {
        step: String,
        by: String,
    },
}

impl EventKind {
    /// The status this event moves its order to, if it is a status change.
    pub fn status(&self) -> Option<OrderStatus> {
        Some(match self {
            EventKind::OrderPlaced { .. } => OrderStatus::Placed,
            EventKind::PaymentPending { .. } => OrderStatus::PaymentPending,
            EventKind::OrderPaid { .. } => OrderStatus::Paid,
            EventKind::OrderReserved { .. } => OrderStatus::Reserved,
            EventKind::OrderAccepted { .. } => OrderStatus::Accepted,
            EventKind::OrderRejected { .. } => OrderStatus::Rejected,
            EventKind::OrderInDelivery { .. } => OrderStatus::InDelivery,
            EventKind::OrderDelivered => OrderStatus::Delivered,
            EventKind::OrderClosed => OrderStatus::Closed,
            EventKind::OrderCanceled { .. } => OrderStatus::Canceled,
            _ => return None,
        })
    }

    /// Whether the order service writes this event (and no other service
    /// does): it applies such an event to the order as it writes it, so it
    /// must not apply it again when it reads it back from the log.
    pub fn is_the_orders(&self) -> bool {
        self.status().is_some()
            || matches!(self, EventKind::DeliveryRequested { .. } | EventKind::OrderDeclined { .. })
    }

    /// For an event that ends an order early (canceled, rejected): whether
    /// a payment already taken is refunded. The services compensate on it.
    pub fn ends_order(&self) -> Option<bool> {
        match self {
            EventKind::OrderCanceled { reason } => Some(reason.refunds()),
            EventKind::OrderRejected { .. } => Some(true),
            _ => None,
        }
    }

    /// The words of whoever turned the order down: a party declining it, or
    /// a checkpoint rejecting its goods.
    pub fn rejection(&self) -> Option<&str> {
        match self {
            EventKind::OrderRejected { reason, .. } | EventKind::LegRejected { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::OrderPlaced { .. } => "order_placed",
            EventKind::PaymentPending { .. } => "payment_pending",
            EventKind::OrderPaid { .. } => "order_paid",
            EventKind::OrderReserved { .. } => "order_reserved",
            EventKind::OrderAccepted { .. } => "order_accepted",
            EventKind::OrderRejected { .. } => "order_rejected",
            EventKind::OrderInDelivery { .. } => "order_in_delivery",
            EventKind::OrderDelivered => "order_delivered",
            EventKind::OrderClosed => "order_closed",
            EventKind::OrderCanceled { .. } => "order_canceled",
            EventKind::StockReserved { .. } => "stock_reserved",
            EventKind::StockShort { .. } => "stock_short",
            EventKind::StockReleased { .. } => "stock_released",
            EventKind::PaymentRefunded { .. } => "payment_refunded",
            EventKind::DeliveryRequested { .. } => "delivery_requested",
            EventKind::LegStarted { .. } => "leg_started",
            EventKind::LegCompleted { .. } => "leg_completed",
            EventKind::LegRejected { .. } => "leg_rejected",
            EventKind::DeliveryCompleted { .. } => "delivery_completed",
            EventKind::PaymentCaptured { .. } => "payment_captured",
            EventKind::PaymentFailed { .. } => "payment_failed",
            EventKind::OrderDeclined { .. } => "order_declined",
            EventKind::Acted { .. } => "acted",
        }
    }
}
