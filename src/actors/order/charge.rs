//! Paying for an order while it is placed: a card is authorised before
//! the order is acknowledged, or, while card payment is unavailable, the
//! workflow's fallback refuses the order or defers its payment.

use crate::actors::ask;
use crate::actors::payment::{self, Authorize, Defer, PaymentActor};
use crate::config::TimeoutSettings;
use crate::domain::order::Settlement;
use crate::domain::{Money, OrderId, PaymentFallback};
use crate::error::{CallError, NodeError};
use actix::Addr;
use std::time::Duration;

/// A card charge for an order being placed.
pub(super) struct Charge {
    pub(super) payment: Addr<PaymentActor>,
    pub(super) timeouts: TimeoutSettings,
    pub(super) order_id: OrderId,
    pub(super) amount: Money,
    pub(super) card: String,
}

impl Charge {
    /// Authorises the card. When card payment is unavailable (gateway
    /// failing or slow, breaker open, payment service overloaded), the
    /// workflow's fallback decides: refuse ("pay a little later") or defer
    /// (accept the order as payment_pending; the payment service takes the
    /// payment once the gateway recovers). A declined card is never deferred.
    pub(super) async fn run(self, fallback: PaymentFallback) -> Result<Settlement, NodeError> {
        let authorize =
            Authorize { order_id: self.order_id.clone(), amount: self.amount, card: self.card.clone() };
        let outage = match ask(&self.payment, authorize, self.timeouts.payment(), payment::NAME).await {
            Ok(auth) => return Ok(Settlement::Paid(auth.payment_id)),
            // Unavailable now, rather than refused for the card or the request.
            Err(e) if e.class().outage => e,
            Err(e) => return Err(e),
        };
        match fallback {
            // Already "card payment is unavailable": said once, as it is.
            PaymentFallback::Refuse
                if matches!(outage, NodeError::Call(CallError::PaymentUnavailable { .. })) =>
            {
                Err(outage)
            }
            PaymentFallback::Refuse => Err(NodeError::Call(CallError::PaymentUnavailable {
                retry_after: outage.retry_after().unwrap_or(Duration::from_secs(1)),
                reason: outage.to_string(),
            })),
            PaymentFallback::Defer => {
                let defer = Defer { order_id: self.order_id, amount: self.amount, card: self.card };
                ask(&self.payment, defer, self.timeouts.request(), payment::NAME).await?;
                Ok(Settlement::Pending)
            }
        }
    }
}
