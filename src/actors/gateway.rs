//! The simulated card gateway that stands in for a real acquirer.
//!
//! It declines every card ending in the configured suffix (so tests and
//! demos can ask for a decline), and it can be slow and unreliable on
//! purpose: latency (mean ± uniform jitter) and a failure rate come from
//! configuration, and a fault injected for the service named [`NAME`]
//! overrides them at run time. Calls sleep asynchronously, so a slow gateway
//! never blocks the payment actor.

use crate::config::PaymentSettings;
use crate::domain::{Money, OrderId};
use crate::faults::{FaultSpec, Faults};
use std::future::Future;
use std::time::Duration;

/// The fault-injection name of the gateway.
pub use crate::service::GATEWAY as NAME;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    /// The issuer said no: the caller's problem, not the gateway's.
    Declined(String),
    /// The gateway failed or did not answer in time.
    Failed(String),
}

#[derive(Clone)]
pub struct CardGateway {
    decline_suffix: String,
    /// Behaviour from configuration, unless a fault overrides it.
    configured: FaultSpec,
    timeout: Duration,
    faults: Faults,
}

impl CardGateway {
    pub fn new(settings: &PaymentSettings, faults: Faults) -> Self {
        CardGateway {
            decline_suffix: settings.decline_suffix.clone(),
            configured: FaultSpec {
                latency_ms: settings.gateway_latency_ms,
                jitter_ms: settings.gateway_jitter_ms,
                fail_rate: settings.gateway_failure_rate,
                ..FaultSpec::default()
            },
            timeout: Duration::from_millis(settings.gateway_timeout_ms),
            faults,
        }
    }

    /// A token for `card`, to charge it later without keeping it (a
    /// deferred payment): random, with the card's last four digits, which is
    /// all this simulated gateway decides on (its decline suffix is at most
    /// four digits), so a token survives the node's restarts. A real
    /// gateway keeps the card behind its token on its side.
    pub fn tokenize(&self, card: &str) -> String {
        tokenize(card)
    }

    /// Authorises `amount` on `card` (a card number, or a token from
    /// [`Self::tokenize`]) for `order`: the authorisation's id, or why not. The id is derived from the order, as an idempotency key would
    /// be, so authorising the same order again yields the same payment.
    pub fn authorize(
        &self,
        order: &OrderId,
        card: &str,
        _amount: Money,
    ) -> impl Future<Output = Result<String, GatewayError>> + 'static {
        let behaviour = self.faults.get(NAME).unwrap_or_else(|| self.configured.clone());
        let latency = draw_latency(&behaviour);
        let fails = behaviour.fail_rate > 0.0 && fastrand::f64() < behaviour.fail_rate;
        let declined = !self.decline_suffix.is_empty() && card.ends_with(&self.decline_suffix);
        let answer = match (fails, declined) {
            (true, _) => Err(GatewayError::Failed("the card gateway failed".into())),
            (false, true) => {
                Err(GatewayError::Declined(format!("the issuer declined the card ending in {}", last4(card))))
            }
            (false, false) => Ok(format!("pay-{order}")),
        };
        let timeout = self.timeout;
        async move {
            if latency > timeout {
                tokio::time::sleep(timeout).await;
                return Err(GatewayError::Failed(format!(
                    "the card gateway did not answer within {timeout:?}"
                )));
            }
            // A timer, even of zero, waits for the runtime's next tick
            // (about a millisecond): an instant gateway answers at once.
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            answer
        }
    }
}

fn draw_latency(b: &FaultSpec) -> Duration {
    let jitter = b.jitter_ms.min(b.latency_ms);
    let ms =
        if jitter == 0 { b.latency_ms } else { fastrand::u64(b.latency_ms - jitter..=b.latency_ms + jitter) };
    Duration::from_millis(ms)
}

/// See [`CardGateway::tokenize`].
pub fn tokenize(card: &str) -> String {
    format!("{TOKEN_PREFIX}{}_{}", uuid::Uuid::now_v7().simple(), last4(card))
}

/// How every token starts (and no card number does).
pub const TOKEN_PREFIX: &str = "tok_";

/// The last four digits, the most of a card number that is ever shown or kept.
pub fn last4(card: &str) -> &str {
    &card[card.len().saturating_sub(4)..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn gateway(faults: Faults) -> CardGateway {
        CardGateway::new(&Settings::default().payment, faults)
    }

    #[tokio::test]
    async fn declines_exactly_the_configured_test_numbers() {
        let g = gateway(Faults::default());
        let order = OrderId::from_number(1);
        let declined = g.authorize(&order, "4000000000000002", Money::ZERO).await;
        assert!(matches!(declined, Err(GatewayError::Declined(why)) if why.contains("0002")));
        assert_eq!(g.authorize(&order, "4111111111111111", Money::ZERO).await.unwrap(), "pay-ord-1");
    }

    #[tokio::test]
    async fn an_injected_fault_makes_it_fail_or_time_out() {
        let faults = Faults::default();
        let g = gateway(faults.clone());
        let order = OrderId::from_number(1);
        faults.set(NAME, FaultSpec { fail_rate: 1.0, ..FaultSpec::default() });
        assert!(matches!(
            g.authorize(&order, "4111111111111111", Money::ZERO).await,
            Err(GatewayError::Failed(_))
        ));
        faults.set(NAME, FaultSpec { latency_ms: 60_000, ..FaultSpec::default() });
        let mut g = g;
        g.timeout = Duration::from_millis(20);
        let slow = g.authorize(&order, "4111111111111111", Money::ZERO).await;
        assert!(matches!(slow, Err(GatewayError::Failed(why)) if why.contains("did not answer")));
    }

    #[tokio::test]
    async fn a_gateway_without_latency_answers_on_the_first_poll() {
        use futures_util::FutureExt;
        let faults = Faults::default();
        faults.set(NAME, FaultSpec { latency_ms: 0, ..FaultSpec::default() });
        let g = gateway(faults);
        let answer = g.authorize(&OrderId::from_number(1), "4111111111111111", Money::ZERO).now_or_never();
        assert_eq!(answer.expect("answered without waiting for a timer").unwrap(), "pay-ord-1");
    }

    #[test]
    fn latency_stays_within_its_jitter() {
        let b = FaultSpec { latency_ms: 400, jitter_ms: 220, ..FaultSpec::default() };
        for _ in 0..1000 {
            let d = draw_latency(&b).as_millis();
            assert!((180..=620).contains(&d), "{d}");
        }
    }
}
