//! Who may do what: the principal a request is made by, and the rules of
//! which principal may take which step of which order, and see it.
//!
//! Pure: the HTTP layer authenticates (API keys, the admin token) and the
//! node asks these rules before it forwards a command; an embedding
//! application names its principal and the same rules hold.
//!
//! A workflow names the party for each of its steps: `acceptance` (who
//! accepts and rejects), and `parties` for the rest (`confirm_deposit`,
//! `seller_cancel`, each leg by name). A step it does not name is the
//! seller's, or for a leg, the accepting party's when there is one. A party
//! that accepted an order is the one that takes its legs: driver d1 cannot
//! start d2's ride.

use super::{CustomerId, Invalid, StatusView, Workflow, Workflows};
use std::fmt;

/// Who a request is made by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// Nobody is authenticated because the node runs open (a loopback bind
    /// with no keys): anyone may take any step, as the party a body names.
    Open,
    /// Dead letters, faults, pausing services; sees everything.
    Admin,
    /// Manages the catalog; sees everything.
    Operator,
    /// A customer: places orders, and sees and acts on their own.
    Customer(CustomerId),
    /// A party of workflows (`seller`, `hotel:grand`, `driver:d1`): its
    /// role, and which one of them it is, if the role has several.
    Party { role: String, name: Option<String> },
}

/// A step an order's workflow gives to someone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Cancel,
    ConfirmReceipt,
    ConfirmDeposit,
    SellerCancel,
    /// Accepting or rejecting.
    Accept,
    /// Starting, completing or rejecting the leg called so.
    Leg(String),
}

/// What the rules need to know of an order; none of it ever changes once
/// set, so a check made before a command still holds when it is decided.
#[derive(Debug, Clone, Copy)]
pub struct OrderFacts<'a> {
    pub customer: &'a CustomerId,
    pub accepted_by: Option<&'a str>,
}

/// A step refused: who may take it instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{step} is for {who} only")]
pub struct Denied {
    pub step: String,
    pub who: String,
}

const SELLER: &str = "seller";

impl Principal {
    /// Reads `customer:kim`, `driver:d1`, `seller`, `operator` or `admin`.
    pub fn parse(raw: &str) -> Result<Principal, Invalid> {
        let bad = |why: &str| Invalid::new(format!("principal {raw:?}: {why}"));
        let (role, name) = match raw.split_once(':') {
            Some((role, name)) => (role, Some(name)),
            None => (raw, None),
        };
        let word =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !word(role) || name.is_some_and(|n| !word(n)) {
            return Err(bad("use letters, digits, - _ . as role or role:name"));
        }
        Ok(match (role, name) {
            ("admin", None) => Principal::Admin,
            ("operator", None) => Principal::Operator,
            ("customer", Some(name)) => Principal::Customer(CustomerId::parse(name)?),
            ("customer", None) => return Err(bad("a customer is customer:<id>")),
            ("admin" | "operator" | "open", _) => return Err(bad("admin, operator and open take no name")),
            (role, name) => Principal::Party { role: role.to_owned(), name: name.map(str::to_owned) },
        })
    }

    /// Whether it sees and may list every order.
    pub fn sees_everything(&self) -> bool {
        matches!(self, Principal::Open | Principal::Admin | Principal::Operator)
    }

    /// Whether it may add products and units and take units out of service.
    pub fn manages_catalog(&self) -> bool {
        match self {
            Principal::Open | Principal::Admin | Principal::Operator => true,
            Principal::Party { role, .. } => role == SELLER,
            Principal::Customer(_) => false,
        }
    }

    /// The party it acts as, for a step given to `role`.
    fn is_party(&self, role: &str) -> bool {
        matches!(self, Principal::Party { role: r, .. } if r == role)
    }

    /// Whether it may see `order` of `workflow`: its customer, a party with
    /// a step in the workflow, or who sees everything. Anyone else is told
    /// the order does not exist.
    pub fn may_see(&self, order: OrderFacts<'_>, workflow: &Workflow) -> bool {
        match self {
            Principal::Customer(c) => c == order.customer,
            Principal::Party { role, .. } => workflow.party_roles().any(|r| r == role),
            _ => true,
        }
    }

    /// Whether it may see the order `view` shows, of a workflow among
    /// `workflows` (one it does not know: only who sees everything).
    pub fn may_see_view(&self, view: &StatusView, workflows: &Workflows) -> bool {
        let facts = OrderFacts { customer: &view.customer, accepted_by: view.accepted_by.as_deref() };
        self.sees_everything() || workflows.get(&view.workflow).is_ok_and(|wf| self.may_see(facts, wf))
    }

    /// Whether it may list `workflow`'s orders by status (a work list).
    pub fn may_list(&self, workflow: &Workflow) -> bool {
        match self {
            Principal::Party { role, .. } => workflow.party_roles().any(|r| r == role),
            Principal::Customer(_) => false,
            _ => true,
        }
    }

    /// Whether it may list `customer`'s orders and notifications.
    pub fn may_list_customer(&self, customer: &CustomerId) -> bool {
        match self {
            Principal::Customer(c) => c == customer,
            Principal::Party { .. } => false,
            _ => true,
        }
    }

    /// Why it may not read `workflow`'s work lists, if it may not.
    pub fn work_list_refused(&self, workflow: &Workflow) -> Option<String> {
        let why = || format!("{self} has no work list in workflow {}", workflow.name);
        (!self.may_list(workflow)).then(why)
    }

    /// Why it may not follow the work of `party` (a role), if it may not:
    /// a party follows its own role's; whoever sees everything, any.
    pub fn party_stream_refused(&self, party: &str) -> Option<String> {
        let allowed = match self {
            Principal::Party { role, .. } => role == party,
            p => p.sees_everything(),
        };
        (!allowed).then(|| format!("{self} does not follow the {party}s' work"))
    }

    /// Why it may not list `customer`'s orders, if it may not.
    pub fn customer_list_refused(&self, customer: &CustomerId) -> Option<String> {
        let why = || format!("{self} may not list the orders of customer {customer}");
        (!self.may_list_customer(customer)).then(why)
    }

    /// Whether it may take `step` of `order` of `workflow`; when not, who
    /// may.
    pub fn may(&self, step: &Step, order: OrderFacts<'_>, workflow: &Workflow) -> Result<(), Denied> {
        let role = match step {
            Step::Cancel | Step::ConfirmReceipt => {
                return match self {
                    Principal::Open => Ok(()),
                    Principal::Customer(c) if c == order.customer => Ok(()),
                    _ => Err(Denied { step: step.to_string(), who: format!("customer:{}", order.customer) }),
                };
            }
            _ => workflow.party_for(step),
        };
        // The party that took the order takes its legs itself.
        let who = match (step, order.accepted_by) {
            (Step::Leg(_), Some(accepted)) if Some(role) == workflow.acceptance_role() => accepted.to_owned(),
            _ => role.to_owned(),
        };
        let allowed = match self {
            Principal::Open => true,
            _ if who == role => self.is_party(role),
            other => other.as_text() == who,
        };
        match allowed {
            true => Ok(()),
            false => Err(Denied { step: step.to_string(), who }),
        }
    }

    /// The principal as written in configuration (`driver:d1`): what an
    /// order records as the party that acted.
    pub fn as_text(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Open => f.write_str("open"),
            Principal::Admin => f.write_str("admin"),
            Principal::Operator => f.write_str("operator"),
            Principal::Customer(c) => write!(f, "customer:{c}"),
            Principal::Party { role, name: None } => f.write_str(role),
            Principal::Party { role, name: Some(n) } => write!(f, "{role}:{n}"),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Cancel => f.write_str("cancel"),
            Step::ConfirmReceipt => f.write_str("receipt"),
            Step::ConfirmDeposit => f.write_str("confirm_deposit"),
            Step::SellerCancel => f.write_str("seller_cancel"),
            Step::Accept => f.write_str("accept"),
            Step::Leg(name) => write!(f, "leg {name}"),
        }
    }
}

/// The step names a workflow's `parties` may set, besides its legs.
pub const NAMED_STEPS: [&str; 2] = ["confirm_deposit", "seller_cancel"];

impl Workflow {
    /// The role that accepts and rejects, when a party does.
    pub fn acceptance_role(&self) -> Option<&str> {
        match &self.acceptance {
            super::Acceptance::Auto => None,
            super::Acceptance::Party(role) => Some(role),
        }
    }

    /// The role that takes `step`.
    pub fn party_for(&self, step: &Step) -> &str {
        let named = |key: &str| self.parties.get(key).map(String::as_str);
        let accepting = self.acceptance_role();
        match step {
            Step::Cancel | Step::ConfirmReceipt => "customer",
            Step::ConfirmDeposit => named("confirm_deposit").unwrap_or(SELLER),
            Step::SellerCancel => named("seller_cancel").unwrap_or(SELLER),
            Step::Accept => accepting.unwrap_or(SELLER),
            Step::Leg(leg) => named(leg).or(accepting).unwrap_or(SELLER),
        }
    }

    /// Every role with a step in this workflow: the steps it has (a
    /// deposit to confirm only with bank transfers, a seller's cancel only
    /// with `seller_cancel_until`, acceptance only by a party).
    pub fn party_roles(&self) -> impl Iterator<Item = &str> {
        let mut steps: Vec<Step> = self.legs.iter().map(|l| Step::Leg(l.name.clone())).collect();
        if self.allows_payment(super::PaymentMethod::BankTransfer) {
            steps.push(Step::ConfirmDeposit);
        }
        if self.seller_cancel_until.is_some() {
            steps.push(Step::SellerCancel);
        }
        if self.acceptance_role().is_some() {
            steps.push(Step::Accept);
        }
        steps.iter().map(|s| self.party_for(s)).collect::<Vec<_>>().into_iter()
    }
}
