//! Fault injection: make a service panic, slow down or fail on purpose.
//!
//! Off until someone sets a fault (configuration or `POST /admin/faults`).
//! Tests, demos and operators use it to prove that the node heals itself.
//! Every fault that fires is logged.

use crate::domain::OrderId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do to one service. Fields combine; absent ones do nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Panic on each of the next N messages (commands or event batches).
    #[serde(default)]
    pub panic_next: u32,
    /// Panic whenever an event or command of this order is handled: a
    /// poison event.
    #[serde(default)]
    pub panic_on_order: Option<OrderId>,
    /// Added to every message, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// For the card gateway: latency varies by up to this much either way.
    #[serde(default)]
    pub jitter_ms: u64,
    /// Share of messages, from 0.0 to 1.0, that fail with an error.
    #[serde(default)]
    pub fail_rate: f64,
}

impl FaultSpec {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.fail_rate) {
            return Err(format!("fail_rate must be between 0 and 1 (got {})", self.fail_rate));
        }
        if self.latency_ms > 60_000 {
            return Err("latency_ms must be at most 60000".into());
        }
        Ok(())
    }

    fn is_idle(&self) -> bool {
        self.panic_next == 0
            && self.panic_on_order.is_none()
            && self.latency_ms == 0
            && self.jitter_ms == 0
            && self.fail_rate == 0.0
    }
}

/// What a fault check decided for one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Injected {
    Nothing,
    /// Sleep this long, then carry on.
    Delay(Duration),
    /// Fail the message with an error.
    Fail,
    /// Panic.
    Panic(String),
}

/// The faults of every service; shared by the actors and the admin API.
#[derive(Clone, Default)]
pub struct Faults {
    by_service: Arc<Mutex<BTreeMap<String, FaultSpec>>>,
}

impl Faults {
    pub fn set(&self, service: &str, spec: FaultSpec) {
        tracing::warn!(service, ?spec, "fault injected");
        if let Ok(mut map) = self.by_service.lock() {
            map.insert(service.to_owned(), spec);
        }
    }

    /// Clears one service's fault, or every fault with `None`.
    pub fn clear(&self, service: Option<&str>) {
        tracing::warn!(service = service.unwrap_or("all"), "faults cleared");
        if let Ok(mut map) = self.by_service.lock() {
            match service {
                Some(s) => {
                    map.remove(s);
                }
                None => map.clear(),
            }
        }
    }

    /// One service's fault, if it has one.
    pub fn get(&self, service: &str) -> Option<FaultSpec> {
        self.by_service.lock().ok().and_then(|m| m.get(service).cloned())
    }

    pub fn list(&self) -> BTreeMap<String, FaultSpec> {
        self.by_service.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Decides what happens to the next message of `service`, about `order`
    /// if known. A `panic_next` fault is used up one message at a time.
    pub fn check(&self, service: &str, order: Option<&OrderId>) -> Injected {
        let Ok(mut map) = self.by_service.lock() else { return Injected::Nothing };
        let Some(spec) = map.get_mut(service) else { return Injected::Nothing };
        let injected = decide(spec, order);
        if spec.is_idle() {
            map.remove(service);
        }
        if injected != Injected::Nothing {
            tracing::warn!(service, order = ?order.map(OrderId::as_str), ?injected, "fault fired");
        }
        injected
    }

    /// Panics if `order` is the service's poison order. For the events of a
    /// batch after its first: latency and failures apply once per message.
    pub fn poison_check(&self, service: &str, order: &OrderId) {
        let poisoned = self
            .by_service
            .lock()
            .map(|m| m.get(service).is_some_and(|s| s.panic_on_order.as_ref() == Some(order)))
            .unwrap_or(false);
        if poisoned {
            tracing::warn!(service, order = %order, "fault fired: poison order");
            panic!("injected panic on order {order}");
        }
    }

    /// Runs the check and acts on it: sleeps, or panics. Returns `true`
    /// when the message must fail. Never call it inside a store transaction:
    /// sled holds its global write lock while one runs.
    pub fn apply(&self, service: &str, order: Option<&OrderId>) -> bool {
        match self.check(service, order) {
            Injected::Nothing => false,
            Injected::Delay(d) => {
                std::thread::sleep(d);
                false
            }
            Injected::Fail => true,
            Injected::Panic(why) => panic!("{why}"),
        }
    }
}

fn decide(spec: &mut FaultSpec, order: Option<&OrderId>) -> Injected {
    if spec.panic_next > 0 {
        spec.panic_next -= 1;
        return Injected::Panic("injected panic".into());
    }
    if let (Some(poison), Some(order)) = (&spec.panic_on_order, order) {
        if poison == order {
            return Injected::Panic(format!("injected panic on order {order}"));
        }
    }
    if spec.fail_rate > 0.0 && fastrand::f64() < spec.fail_rate {
        return Injected::Fail;
    }
    if spec.latency_ms > 0 {
        return Injected::Delay(Duration::from_millis(spec.latency_ms));
    }
    Injected::Nothing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_next_is_used_up_then_forgotten() {
        let faults = Faults::default();
        faults.set("payment", FaultSpec { panic_next: 2, ..FaultSpec::default() });
        assert!(matches!(faults.check("payment", None), Injected::Panic(_)));
        assert!(matches!(faults.check("payment", None), Injected::Panic(_)));
        assert_eq!(faults.check("payment", None), Injected::Nothing);
        assert!(faults.list().is_empty());
        assert_eq!(faults.check("order", None), Injected::Nothing);
    }

    #[test]
    fn a_poison_order_panics_every_time_and_only_for_that_order() {
        let faults = Faults::default();
        let poison = OrderId::from_number(7);
        faults.set("inventory", FaultSpec { panic_on_order: Some(poison.clone()), ..FaultSpec::default() });
        for _ in 0..3 {
            assert!(matches!(faults.check("inventory", Some(&poison)), Injected::Panic(_)));
        }
        assert_eq!(faults.check("inventory", Some(&OrderId::from_number(8))), Injected::Nothing);
        faults.clear(Some("inventory"));
        assert_eq!(faults.check("inventory", Some(&poison)), Injected::Nothing);
    }

    #[test]
    fn fail_rate_one_always_fails_and_bad_rates_are_refused() {
        let faults = Faults::default();
        faults.set("delivery", FaultSpec { fail_rate: 1.0, ..FaultSpec::default() });
        assert_eq!(faults.check("delivery", None), Injected::Fail);
        assert!(FaultSpec { fail_rate: 1.5, ..FaultSpec::default() }.validate().is_err());
    }
}
