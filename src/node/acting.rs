//! The node's API as one principal: every step checked against the rules
//! of [`crate::domain::access`] before it is forwarded.
//!
//! The HTTP gateway serves every request through [`Node::acting`] with the
//! principal it authenticated; an embedding application does the same with
//! the principal it knows (its own users), so the same rules hold there. The
//! plain [`Node`] calls stay as the trusted, in-process operator's.
//!
//! Someone else's order is not found (404), never forbidden: ids cannot be
//! probed. A step the principal may not take is forbidden (403) naming who
//! may.

use super::{bodies, Node};
use crate::actors::order::OrderReceipt;
use crate::actors::projection::{Page, StatusReport};
use crate::domain::access::{OrderFacts, Principal, Step};
use crate::domain::delivery::LegAct;
use crate::domain::order::Command;
use crate::domain::subscription::NewSubscription;
use crate::domain::{CustomerId, NewProduct, Notification, OrderRequest, Workflow};
use crate::error::{NodeError, Refused};
use std::sync::Arc;

/// The node, acting for one principal.
pub struct Acting<'a> {
    node: &'a Node,
    principal: Principal,
}

impl Node {
    /// The API as `principal` would use it.
    pub fn acting(&self, principal: Principal) -> Acting<'_> {
        Acting { node: self, principal }
    }
}

fn forbidden(why: String) -> NodeError {
    NodeError::Refused(Refused::Forbidden(why))
}

impl Acting<'_> {
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    // ---- catalog ----

    fn catalog(&self) -> Result<(), NodeError> {
        match self.principal.manages_catalog() {
            true => Ok(()),
            false => Err(forbidden(format!(
                "the catalog is managed by the seller or an operator, not {}",
                self.principal
            ))),
        }
    }

    pub async fn add_product(&self, product: NewProduct) -> Result<bodies::Product, NodeError> {
        self.catalog()?;
        self.node.add_product(product).await
    }

    pub async fn restock(
        &self,
        sku: &str,
        qty: Option<i64>,
        units: Vec<String>,
    ) -> Result<bodies::Product, NodeError> {
        self.catalog()?;
        self.node.restock(sku, qty, units).await
    }

    pub async fn set_unit_in_service(
        &self,
        sku: &str,
        unit: &str,
        in_service: bool,
    ) -> Result<bodies::Product, NodeError> {
        self.catalog()?;
        self.node.set_unit_in_service(sku, unit, in_service).await
    }

    pub async fn product(&self, sku: &str) -> Result<bodies::Product, NodeError> {
        self.node.product(sku).await
    }

    pub async fn availability(
        &self,
        sku: &str,
        from: &str,
        to: &str,
    ) -> Result<bodies::Availability, NodeError> {
        self.node.availability(sku, from, to).await
    }

    /// Every workflow, and whether this principal may list its orders.
    pub fn workflows(&self) -> Vec<bodies::Workflow> {
        self.node.workflows_for(|w| self.principal.may_list(w))
    }

    // ---- orders ----

    /// Places an order: a customer for themselves, or whoever sees
    /// everything (an operator on a customer's behalf).
    pub async fn place_order(
        &self,
        request: OrderRequest,
        key: Option<String>,
    ) -> Result<OrderReceipt, NodeError> {
        match &self.principal {
            Principal::Customer(c) if c.as_str() != request.customer => {
                return Err(forbidden(format!("{} places orders for customer {} only", self.principal, c)))
            }
            Principal::Party { .. } => {
                return Err(forbidden(format!("orders are placed by customers, not {}", self.principal)))
            }
            _ => {}
        }
        self.node.place_order(request, key).await
    }

    /// The order, if this principal may see it; else not found.
    pub async fn order(&self, order_id: &str) -> Result<bodies::Order, NodeError> {
        Ok(self.visible(order_id).await?.0)
    }

    /// The order and its workflow, if this principal may see it.
    async fn visible(&self, order_id: &str) -> Result<(bodies::Order, Arc<Workflow>), NodeError> {
        let order = self.node.order(order_id).await?;
        let workflow = self.node.workflow(&order.workflow)?;
        let facts = OrderFacts { customer: &order.customer, accepted_by: order.accepted_by.as_deref() };
        match self.principal.may_see(facts, &workflow) {
            true => Ok((order, workflow)),
            false => Err(NodeError::not_found("order", order_id)),
        }
    }

    /// Checks the principal may take `step` of the order (named by the
    /// workflow's leg under way for `Step::Leg("")`).
    async fn may(&self, order_id: &str, step: Step) -> Result<(), NodeError> {
        if self.principal == Principal::Open {
            // Anyone may do anything: no need to read the order first.
            return Ok(());
        }
        let (order, workflow) = self.visible(order_id).await?;
        let step = match step {
            Step::Leg(name) if name.is_empty() => Step::Leg(current_leg(&order, &workflow)),
            Step::Leg(name) => {
                Step::Leg(workflow.leg(&name).map(|i| workflow.legs[i].name.clone()).unwrap_or(name))
            }
            other => other,
        };
        let facts = OrderFacts { customer: &order.customer, accepted_by: order.accepted_by.as_deref() };
        self.principal.may(&step, facts, &workflow).map_err(|denied| {
            forbidden(format!(
                "{} of order {}: for {} only, not {}",
                denied.step, order.id, denied.who, self.principal
            ))
        })
    }

    /// Who is recorded as having taken a step: the principal, unless the
    /// node runs open (nobody is known then).
    fn by(&self) -> Option<String> {
        (self.principal != Principal::Open).then(|| self.principal.to_string())
    }

    async fn step(&self, order_id: &str, step: Step, command: Command) -> Result<bodies::Order, NodeError> {
        self.may(order_id, step).await?;
        self.node.command_by(order_id, command, self.by()).await
    }

    pub async fn cancel_order(&self, order_id: &str) -> Result<bodies::Order, NodeError> {
        self.step(order_id, Step::Cancel, Command::Cancel).await
    }

    pub async fn confirm_receipt(&self, order_id: &str) -> Result<bodies::Order, NodeError> {
        self.step(order_id, Step::ConfirmReceipt, Command::ConfirmReceipt).await
    }

    pub async fn confirm_deposit(&self, order_id: &str) -> Result<bodies::Order, NodeError> {
        self.step(order_id, Step::ConfirmDeposit, Command::ConfirmDeposit).await
    }

    pub async fn seller_cancel_order(&self, order_id: &str) -> Result<bodies::Order, NodeError> {
        self.step(order_id, Step::SellerCancel, Command::SellerCancel).await
    }

    /// Accepts as this principal. `by` is for an open node, where nobody is
    /// authenticated; otherwise it may only repeat the principal.
    pub async fn accept_order(&self, order_id: &str, by: Option<&str>) -> Result<bodies::Order, NodeError> {
        let party = self.party(by)?;
        self.may(order_id, Step::Accept).await?;
        self.node.accept_order(order_id, &party).await
    }

    pub async fn reject_order(
        &self,
        order_id: &str,
        by: Option<&str>,
        reason: &str,
    ) -> Result<bodies::Order, NodeError> {
        let party = self.party(by)?;
        self.may(order_id, Step::Accept).await?;
        self.node.reject_order(order_id, &party, reason).await
    }

    /// Who acts: the principal; on an open node, whom the body names.
    fn party(&self, by: Option<&str>) -> Result<String, NodeError> {
        let me = self.principal.to_string();
        match (&self.principal, by) {
            (Principal::Open, Some(by)) => Ok(by.to_owned()),
            (Principal::Open, None) => Err(NodeError::Refused(Refused::Invalid("by: name the party".into()))),
            (_, Some(by)) if by != me => Err(forbidden(format!("{me} acts as itself, not as {by:?}"))),
            _ => Ok(me),
        }
    }

    async fn leg(
        &self,
        order_id: &str,
        leg: Option<&str>,
        act: LegAct,
    ) -> Result<bodies::Delivery, NodeError> {
        self.may(order_id, Step::Leg(leg.unwrap_or("").to_owned())).await?;
        self.node.leg_by(order_id, leg, act, self.by()).await
    }

    pub async fn complete_delivery(&self, order_id: &str) -> Result<bodies::Delivery, NodeError> {
        self.leg(order_id, None, LegAct::Complete).await
    }

    pub async fn start_leg(&self, order_id: &str, leg: &str) -> Result<bodies::Delivery, NodeError> {
        self.leg(order_id, Some(leg), LegAct::Start).await
    }

    pub async fn complete_leg(&self, order_id: &str, leg: &str) -> Result<bodies::Delivery, NodeError> {
        self.leg(order_id, Some(leg), LegAct::Complete).await
    }

    pub async fn reject_leg(
        &self,
        order_id: &str,
        leg: &str,
        reason: &str,
    ) -> Result<bodies::Delivery, NodeError> {
        self.leg(order_id, Some(leg), LegAct::Reject(super::api::reason_text(reason)?)).await
    }

    pub async fn delivery(&self, order_id: &str) -> Result<bodies::Delivery, NodeError> {
        if !self.principal.sees_everything() {
            self.visible(order_id).await?;
        }
        self.node.delivery(order_id).await
    }

    /// A customer's notifications, then live (see
    /// [`Node::notification_stream`]): for that customer, or who sees all.
    pub async fn notification_stream(
        &self,
        customer: &str,
        after: u64,
    ) -> Result<impl futures_util::Stream<Item = Notification> + use<>, NodeError> {
        self.customer(customer)?;
        self.node.notification_stream(customer, after).await
    }

    /// A workflow's notifications (see [`Node::workflow_stream`]): for a
    /// party with a step in it, or who sees everything.
    pub async fn workflow_stream(
        &self,
        workflow: &str,
        resume: Option<u64>,
    ) -> Result<impl futures_util::Stream<Item = Notification> + use<>, NodeError> {
        if !self.principal.may_list(&*self.node.workflow(workflow)?) {
            return Err(forbidden(format!("{} has no work list in workflow {workflow}", self.principal)));
        }
        self.node.workflow_stream(workflow, resume).await
    }

    /// A party role's notifications (see [`Node::party_stream`]): for a
    /// party of that role, or who sees everything.
    pub async fn party_stream(
        &self,
        party: &str,
        resume: Option<u64>,
    ) -> Result<impl futures_util::Stream<Item = Notification> + use<>, NodeError> {
        if let Some(why) = self.principal.party_stream_refused(party) {
            return Err(forbidden(why));
        }
        self.node.party_stream(party, resume).await
    }

    // ---- webhooks ----

    /// A subscription this principal may make: whoever sees everything,
    /// any; a customer, to its own orders; a party, to its role's (in a
    /// workflow where it has a step).
    fn own_subscription(&self, mut new: NewSubscription) -> Result<NewSubscription, NodeError> {
        let refuse = |why: &str| Err(forbidden(format!("{} {why}", self.principal)));
        match &self.principal {
            p if p.sees_everything() => {}
            Principal::Customer(c) => {
                if new.customer.as_deref().is_some_and(|x| x != c.as_str())
                    || new.workflow.is_some()
                    || new.party.is_some()
                {
                    return refuse("subscribes to its own orders only");
                }
                new.customer = Some(c.to_string());
            }
            Principal::Party { role, .. } => {
                if new.party.as_deref().is_some_and(|p| p != role) || new.customer.is_some() {
                    return refuse("subscribes to its own role's notifications only");
                }
                if let Some(w) = &new.workflow {
                    if !self.node.workflow(w)?.party_roles().any(|r| r == role) {
                        return refuse(&format!("has no step in workflow {w}"));
                    }
                }
                new.party = Some(role.clone());
            }
            _ => return refuse("may not subscribe"),
        }
        Ok(new)
    }

    pub async fn subscribe(&self, new: NewSubscription) -> Result<bodies::Subscription, NodeError> {
        self.subscribe_under(new, None).await
    }

    /// [`Acting::subscribe`], under `id` if given (a shard keeps a
    /// subscription under the id the cluster's first shard gave it); one of
    /// another principal's ids is refused.
    pub async fn subscribe_under(
        &self,
        new: NewSubscription,
        id: Option<u64>,
    ) -> Result<bodies::Subscription, NodeError> {
        let new = self.own_subscription(new)?;
        self.node.subscribe_as(new, &self.principal.to_string(), id).await
    }

    /// The subscriptions this principal may see: its own, or all.
    pub async fn subscriptions(&self) -> Result<Vec<bodies::Subscription>, NodeError> {
        let all = self.node.subscriptions().await?;
        let me = self.principal.to_string();
        Ok(all.into_iter().filter(|s| self.principal.sees_everything() || s.owner == me).collect())
    }

    /// Drops one of its own (someone else's is not found).
    pub async fn unsubscribe(&self, id: u64) -> Result<(), NodeError> {
        if !self.subscriptions().await?.iter().any(|s| s.id == id) {
            return Err(NodeError::not_found("subscription", id));
        }
        self.node.unsubscribe(id).await
    }

    // ---- read side ----

    pub async fn status(&self, order_id: &str) -> Result<StatusReport, NodeError> {
        let report = self.node.status(order_id).await?;
        match self.principal.may_see_view(&report.view, self.node.workflow_rules()) {
            true => Ok(report),
            false => Err(NodeError::not_found("order", order_id)),
        }
    }

    pub async fn list(
        &self,
        workflow: &str,
        status: &str,
        leg: Option<&str>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page, NodeError> {
        let wf = self.node.workflow(workflow)?;
        if let Some(why) = self.principal.work_list_refused(&wf) {
            return Err(forbidden(why));
        }
        self.node.list(workflow, status, leg, after, limit).await
    }

    fn customer(&self, customer: &str) -> Result<(), NodeError> {
        let customer = CustomerId::parse(customer)?;
        match self.principal.customer_list_refused(&customer) {
            None => Ok(()),
            Some(why) => Err(forbidden(why)),
        }
    }

    pub async fn statuses(&self, customer: &str) -> Result<Vec<StatusReport>, NodeError> {
        self.customer(customer)?;
        self.node.statuses(customer).await
    }

    pub async fn notifications(&self, customer: &str) -> Result<Vec<Notification>, NodeError> {
        self.customer(customer)?;
        self.node.notifications(customer).await
    }
}

/// The name of the leg under way, or else the first: what "the current
/// leg" names when nothing is under way yet.
fn current_leg(order: &bodies::Order, workflow: &Workflow) -> String {
    let index = order.leg.unwrap_or(0) as usize;
    workflow.legs.get(index).map(|l| l.name.clone()).unwrap_or_default()
}
