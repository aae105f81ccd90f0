//! A workflow: the knobs that make one engine run different businesses
//! (the shop, the hotel, the driver call, the overseas purchase, the taxi).

use super::message::REFUNDED;
use super::{Invalid, OrderStatus, PaymentMethod};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The settings of one named workflow (from `[workflows.<name>]` in the
/// configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    /// Filled from the table's key when loaded from configuration.
    #[serde(default)]
    pub name: String,
    /// Payment methods an order of this workflow may use.
    pub payment: Vec<PaymentMethod>,
    /// What is reserved for an order, and when.
    #[serde(default)]
    pub reservation: ReservationMode,
    /// `"auto"`, or the party that accepts or rejects orders ("hotel").
    #[serde(default)]
    pub acceptance: Acceptance,
    /// Whether an order books its named units for dates (`from`, `to`): a
    /// hotel room, free again for other dates.
    #[serde(default)]
    pub dated: bool,
    /// The delivery legs, in order; none: the order rests once accepted.
    #[serde(default)]
    pub legs: Vec<LegSpec>,
    /// What a rejected checkpoint leg does to the order.
    #[serde(default)]
    pub rejected_checkpoint: CheckpointPolicy,
    /// Whether the customer must confirm receipt before the order closes.
    pub receipt: bool,
    /// The last status at which the customer may still cancel.
    pub cancel_until: OrderStatus,
    /// The last status at which the seller may cancel (with a refund of
    /// what was paid); none: sellers do not cancel this workflow's orders.
    #[serde(default)]
    pub seller_cancel_until: Option<OrderStatus>,
    /// How long an order may stay at a status before it is canceled as
    /// `expired`, by status name: `{ payment_pending = "24h" }`.
    #[serde(default)]
    pub expire: BTreeMap<String, String>,
    /// What placing a card order does when the payment service cannot
    /// answer (breaker open, overloaded, failing).
    #[serde(default)]
    pub payment_fallback: PaymentFallback,
    /// How this business names a status ("dispatched" for `accepted`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// What a party is told when it accepts an order someone else took.
    #[serde(default = "already_taken")]
    pub taken_message: String,
    /// The language of this workflow's messages when an order names none
    /// (`"en"`: the built-in English).
    #[serde(default = "english")]
    pub lang: String,
    /// Message templates by language and status (or `refunded`): `{ ko = {
    /// accepted = "{order} 예약이 확정되었습니다." } }`. One without a
    /// template gets the built-in English message. Placeholders: see
    /// [`super::message::PLACEHOLDERS`].
    #[serde(default)]
    pub messages: BTreeMap<String, BTreeMap<String, String>>,
    /// What each party hears, by party and status (or `refunded`), in the
    /// party's language (`lang`, default the workflow's), and in other
    /// languages by language: `{ hotel = { lang = "ko", paid = "새 결제 완료
    /// 예약 {order}", en = { paid = "New paid booking {order}" } } }`. Sent
    /// to webhook subscriptions for that party instead of the customer's
    /// words.
    #[serde(default)]
    pub party_messages: BTreeMap<String, BTreeMap<String, PartyWords>>,
    /// What a party's rejection does: end the order, or (a taxi call) keep
    /// it open for the other parties, never offering it to that one again.
    #[serde(default)]
    pub decline: Decline,
    /// How long a leg may run before it completes by itself, by leg name:
    /// `{ ride = "3h" }`. A dated order's last leg (the stay) also ends when
    /// its dates do (check-out).
    #[serde(default)]
    pub max_duration: BTreeMap<String, String>,
    /// The party for each step other than acceptance, by step
    /// (`confirm_deposit`, `seller_cancel`) or leg name: `{ customs =
    /// "customs" }`. Unnamed: the seller's, or a leg the accepting party's
    /// (see [`super::access`]).
    #[serde(default)]
    pub parties: BTreeMap<String, String>,
    /// Most orders of this workflow one party (a driver) may hold at once,
    /// from acceptance until the order ends; none: no limit.
    #[serde(default)]
    pub max_active_per_party: Option<u32>,
}

/// What a party's rejection does to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decline {
    /// The order is rejected: it ends, and what was paid is refunded.
    #[default]
    Ends,
    /// The order stays open for the others; the party's decline is kept.
    KeepsOpen,
}

fn english() -> String {
    "en".to_owned()
}

/// A party's words in a workflow: a template (in the party's language), or,
/// under a language's name, that language's templates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PartyWords {
    Template(String),
    Language(BTreeMap<String, String>),
}

/// The key of a party's words that names their language (default: the
/// workflow's), which `{reason}` is told in.
const PARTY_LANG: &str = "lang";

/// Checks one template at `place` for `subject`: a status name, or
/// `refunded`.
fn check_one(place: &str, subject: &str, template: &str) -> Result<(), String> {
    if OrderStatus::parse(subject).is_none() && subject != REFUNDED {
        return Err(format!("{place}: {subject:?} is not a status nor \"refunded\""));
    }
    super::message::check_template(subject, template).map_err(|e| format!("{place}.{subject}: {e}"))
}

fn already_taken() -> String {
    "this order is already taken".to_owned()
}

/// Who takes an order once it is ready: nobody (it goes on by itself) or
/// a named party (the hotel, a driver, the shop), who may also turn it
/// down. Written `"auto"` or the party's name in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Acceptance {
    #[default]
    Auto,
    Party(String),
}

/// The `acceptance` value for orders accepted without anyone acting.
pub const AUTO: &str = "auto";

impl From<String> for Acceptance {
    fn from(s: String) -> Self {
        match s.as_str() {
            AUTO => Acceptance::Auto,
            _ => Acceptance::Party(s),
        }
    }
}

impl From<Acceptance> for String {
    fn from(a: Acceptance) -> Self {
        match a {
            Acceptance::Auto => AUTO.to_owned(),
            Acceptance::Party(p) => p,
        }
    }
}

/// The configured workflows, each shared (`Arc`) by the services that
/// read it, and the one an order gets when it names none.
#[derive(Debug, Clone)]
pub struct Workflows {
    by_name: BTreeMap<String, Arc<Workflow>>,
    default: String,
}

impl Workflows {
    pub fn new(by_name: BTreeMap<String, Workflow>, default: impl Into<String>) -> Workflows {
        let by_name = by_name.into_iter().map(|(name, wf)| (name, Arc::new(wf))).collect();
        Workflows { by_name, default: default.into() }
    }

    /// The workflow called `name`, or a refusal that lists the known ones.
    pub fn get(&self, name: &str) -> Result<&Arc<Workflow>, Invalid> {
        self.by_name.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
            Invalid::new(format!("unknown workflow {name:?}; known: {}", known.join(", ")))
        })
    }

    /// Every workflow, by name.
    pub fn all(&self) -> impl Iterator<Item = &Workflow> {
        self.by_name.values().map(|wf| &**wf)
    }

    /// The workflows where `party` (a role: "driver") has a step.
    pub fn of_party(&self, party: &str) -> Vec<String> {
        self.all().filter(|wf| wf.party_roles().any(|r| r == party)).map(|wf| wf.name.clone()).collect()
    }

    /// The name of the workflow an order gets when it names none.
    pub fn default_name(&self) -> &str {
        &self.default
    }
}

/// What is reserved for an order, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationMode {
    /// Stock of each line, taken once the order is paid (a shop, rooms).
    #[default]
    AfterPayment,
    /// A unit of each line taken synchronously when the order is placed;
    /// with none available the order is refused (a driver from a pool).
    AtPlacement,
    /// Nothing is reserved.
    None,
}

/// One delivery leg.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegSpec {
    pub name: String,
    /// A checkpoint can be rejected (customs).
    #[serde(default)]
    pub checkpoint: bool,
    /// Someone must start it explicitly; otherwise it starts as soon as the
    /// previous leg (or the delivery) is ready.
    #[serde(default)]
    pub explicit_start: bool,
}

impl LegSpec {
    /// A leg that starts by itself and cannot be rejected.
    pub fn named(name: &str) -> LegSpec {
        LegSpec { name: name.into(), checkpoint: false, explicit_start: false }
    }
}

/// What a rejected checkpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointPolicy {
    /// The order is canceled and its payment refunded.
    #[default]
    Refund,
    /// The goods are discarded, the order is canceled, nothing is refunded.
    Forfeit,
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
            reservation: ReservationMode::AfterPayment,
            acceptance: Acceptance::Auto,
            dated: false,
            legs: vec![LegSpec::named("shipping")],
            rejected_checkpoint: CheckpointPolicy::Refund,
            receipt: true,
            cancel_until: OrderStatus::PaymentPending,
            seller_cancel_until: Some(OrderStatus::InDelivery),
            expire: BTreeMap::from([("payment_pending".to_owned(), "24h".to_owned())]),
            payment_fallback: PaymentFallback::Defer,
            labels: BTreeMap::new(),
            taken_message: already_taken(),
            decline: Decline::Ends,
            lang: english(),
            messages: BTreeMap::new(),
            party_messages: BTreeMap::new(),
            max_duration: BTreeMap::new(),
            parties: BTreeMap::new(),
            max_active_per_party: None,
        }
    }

    pub fn allows_payment(&self, method: PaymentMethod) -> bool {
        self.payment.contains(&method)
    }

    /// How long an order may stay at `status`, if it expires there.
    pub fn expiry(&self, status: OrderStatus) -> Option<std::time::Duration> {
        humantime::parse_duration(self.expire.get(status.as_str())?).ok()
    }

    /// How long the leg called `name` may run, if it has a limit.
    pub fn leg_limit(&self, name: &str) -> Option<std::time::Duration> {
        humantime::parse_duration(self.max_duration.get(name)?).ok()
    }

    /// Whether the seller may cancel an order that is at `status`.
    pub fn allows_seller_cancel(&self, status: OrderStatus) -> bool {
        self.seller_cancel_until.is_some_and(|until| !status.is_terminal() && status.rank() <= until.rank())
    }

    /// Whether a customer may cancel an order that is at `status`.
    pub fn allows_cancel(&self, status: OrderStatus) -> bool {
        !status.is_terminal() && status.rank() <= self.cancel_until.rank()
    }

    pub fn accepts_automatically(&self) -> bool {
        self.acceptance == Acceptance::Auto
    }

    /// How this workflow shows `status` to people.
    pub fn label(&self, status: OrderStatus) -> String {
        self.labels.get(status.as_str()).cloned().unwrap_or_else(|| status.as_str().replace('_', " "))
    }

    /// The leg called `name`, or numbered so.
    pub fn leg(&self, name: &str) -> Option<usize> {
        self.legs
            .iter()
            .position(|l| l.name == name)
            .or_else(|| name.parse().ok().filter(|i| *i < self.legs.len()))
    }

    /// Checks the knobs make sense together.
    pub fn check(&self) -> Result<(), String> {
        if self.payment.is_empty() {
            return Err("payment must name at least one method".into());
        }
        for key in self.labels.keys() {
            if OrderStatus::parse(key).is_none() {
                return Err(format!("labels: {key:?} is not a status"));
            }
        }
        for (key, after) in &self.expire {
            match OrderStatus::parse(key) {
                Some(status) if !status.is_terminal() => {}
                _ => return Err(format!("expire: {key:?} is not a status an order can expire at")),
            }
            match humantime::parse_duration(after) {
                Ok(d) if !d.is_zero() => {}
                _ => {
                    return Err(format!(
                        "expire.{key}: {after:?} is not a duration such as \"24h\" or \"10m\""
                    ))
                }
            }
        }
        for (leg, limit) in &self.max_duration {
            if self.leg(leg).is_none() {
                return Err(format!("max_duration: {leg:?} is not one of the legs"));
            }
            if humantime::parse_duration(limit).map_or(true, |d| d.is_zero()) {
                return Err(format!("max_duration.{leg}: {limit:?} is not a duration such as \"3h\""));
            }
        }
        self.check_parties()?;
        self.check_messages()?;
        for (step, role) in &self.parties {
            if !super::access::NAMED_STEPS.contains(&step.as_str()) && self.leg(step).is_none() {
                let steps = super::access::NAMED_STEPS.join(", ");
                return Err(format!("parties: {step:?} is not a step ({steps}) nor a leg"));
            }
            match super::access::Principal::parse(role) {
                Ok(super::access::Principal::Party { name: None, .. }) => {}
                _ => {
                    return Err(format!("parties.{step}: {role:?} is not a party role (seller, customs, …)"))
                }
            }
        }
        let mut names: Vec<&str> = self.legs.iter().map(|l| l.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) || names.iter().any(|n| n.is_empty()) {
            return Err("legs need distinct, non-empty names".into());
        }
        Ok(())
    }

    /// The languages an order of this workflow may ask for.
    pub fn languages(&self) -> impl Iterator<Item = &str> {
        std::iter::once("en").chain(self.messages.keys().map(String::as_str).filter(|l| *l != "en"))
    }

    /// What `party` hears about `subject` (a status name, or `refunded`),
    /// and the language it is in: in `lang` where the workflow has the
    /// party's words in it, else the party's own words.
    pub fn party_template<'a>(
        &'a self,
        party: &str,
        lang: Option<&'a str>,
        subject: &str,
    ) -> Option<(&'a str, &'a str)> {
        let words = self.party_messages.get(party)?;
        if let Some(Some(PartyWords::Language(in_lang))) = lang.map(|l| words.get(l)) {
            return in_lang.get(subject).map(|t| (t.as_str(), lang.unwrap_or_default()));
        }
        let own_lang = match words.get(PARTY_LANG) {
            Some(PartyWords::Template(l)) => l.as_str(),
            _ => self.lang.as_str(),
        };
        match words.get(subject) {
            Some(PartyWords::Template(t)) => Some((t.as_str(), own_lang)),
            _ => None,
        }
    }

    /// The template for `subject` (a status name, or `refunded`) in `lang`,
    /// if the workflow has one.
    pub fn template(&self, lang: &str, subject: &str) -> Option<&str> {
        self.messages.get(lang)?.get(subject).map(String::as_str)
    }

    /// Whether the workflow says anything in `lang`, to its customers or to
    /// a party.
    pub fn speaks(&self, lang: &str) -> bool {
        self.languages().any(|l| l == lang)
            || self.party_messages.values().any(|words| match words.get(lang) {
                Some(PartyWords::Language(_)) => true,
                _ => matches!(words.get(PARTY_LANG), Some(PartyWords::Template(l)) if l == lang),
            })
    }

    fn check_messages(&self) -> Result<(), String> {
        if !self.languages().any(|l| l == self.lang) {
            return Err(format!("lang {:?} has no messages (give messages.{})", self.lang, self.lang));
        }
        for (party, words) in &self.party_messages {
            for (key, entry) in words {
                match entry {
                    PartyWords::Template(_) if key == PARTY_LANG => {}
                    PartyWords::Template(t) => check_one(&format!("party_messages.{party}"), key, t)?,
                    PartyWords::Language(_) if OrderStatus::parse(key).is_some() || key == REFUNDED => {
                        return Err(format!("party_messages.{party}.{key}: give one template, not a table"));
                    }
                    PartyWords::Language(by_subject) => {
                        let place = format!("party_messages.{party}.{key}");
                        by_subject.iter().try_for_each(|(subject, t)| check_one(&place, subject, t))?;
                    }
                }
            }
        }
        for (lang, by_subject) in &self.messages {
            let place = format!("messages.{lang}");
            by_subject.iter().try_for_each(|(subject, t)| check_one(&place, subject, t))?;
        }
        Ok(())
    }

    /// The knobs that need a party, or dates, to make sense.
    fn check_parties(&self) -> Result<(), String> {
        let party = !self.accepts_automatically();
        if self.decline == Decline::KeepsOpen && !party {
            return Err("decline = \"keeps_open\" needs acceptance by a party".into());
        }
        match self.max_active_per_party {
            Some(0) => return Err("max_active_per_party must be at least 1".into()),
            Some(_) if !party => return Err("max_active_per_party needs acceptance by a party".into()),
            _ => {}
        }
        if self.dated && self.reservation != ReservationMode::AtPlacement {
            // The dates are checked before the card is charged.
            return Err("dated = true needs reservation = \"at_placement\"".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_default_to_the_status_name() {
        let mut wf = Workflow::shop();
        assert_eq!(wf.label(OrderStatus::InDelivery), "in delivery");
        wf.labels.insert("accepted".into(), "dispatched".into());
        assert_eq!(wf.label(OrderStatus::Accepted), "dispatched");
        wf.labels.insert("shipped".into(), "x".into());
        assert!(wf.check().is_err(), "a label for a status that does not exist");
    }

    #[test]
    fn acceptance_is_auto_or_a_named_party_and_reads_back_as_written() {
        let auto: Acceptance = serde_json::from_str("\"auto\"").unwrap();
        let hotel: Acceptance = serde_json::from_str("\"hotel\"").unwrap();
        assert_eq!((auto.clone(), hotel.clone()), (Acceptance::Auto, Acceptance::Party("hotel".into())));
        assert_eq!(serde_json::to_string(&hotel).unwrap(), "\"hotel\"");
        assert_eq!(serde_json::to_string(&auto).unwrap(), "\"auto\"");
    }

    #[test]
    fn an_unknown_workflow_is_refused_with_the_known_ones() {
        let workflows = Workflows::new([("shop".to_owned(), Workflow::shop())].into(), "shop");
        assert_eq!(workflows.get(workflows.default_name()).unwrap().name, "shop");
        assert!(workflows.get("spa").unwrap_err().0.contains("known: shop"));
    }

    #[test]
    fn knobs_that_need_a_party_or_dates_or_a_leg_say_so() {
        let check = |change: &dyn Fn(&mut Workflow)| {
            let mut wf = Workflow::shop();
            change(&mut wf);
            wf.check()
        };
        assert!(check(&|wf| wf.decline = Decline::KeepsOpen).unwrap_err().contains("acceptance by a party"));
        assert!(check(&|wf| wf.max_active_per_party = Some(1))
            .unwrap_err()
            .contains("acceptance by a party"));
        assert!(check(&|wf| wf.dated = true).unwrap_err().contains("at_placement"));
        let unknown_leg = check(&|wf| wf.max_duration = BTreeMap::from([("ride".into(), "3h".into())]));
        assert!(unknown_leg.unwrap_err().contains("not one of the legs"));
        let not_a_duration =
            check(&|wf| wf.max_duration = BTreeMap::from([("shipping".into(), "soon".into())]));
        assert!(not_a_duration.unwrap_err().contains("not a duration"));
        let fine = check(&|wf| wf.max_duration = BTreeMap::from([("shipping".into(), "3h".into())]));
        assert_eq!(fine, Ok(()));
        assert_eq!(
            Workflow { max_duration: BTreeMap::from([("shipping".into(), "3h".into())]), ..Workflow::shop() }
                .leg_limit("shipping"),
            Some(std::time::Duration::from_secs(3 * 3600))
        );
    }

    #[test]
    fn legs_are_found_by_name_or_number() {
        let wf = Workflow::shop();
        assert_eq!(wf.leg("shipping"), Some(0));
        assert_eq!(wf.leg("0"), Some(0));
        assert_eq!(wf.leg("1"), None);
        assert_eq!(wf.leg("customs"), None);
    }
}
