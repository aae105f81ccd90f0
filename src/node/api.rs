//! The business calls of the embedding API.

use super::{bodies, order_id_of, order_span, Node, Service};
use crate::actors::delivery::GetDelivery;
use crate::actors::inventory::{AddProduct, Availability, GetProduct, GetReservation, Restock, SetInService};
use crate::actors::notification::{
    follow, FailedDeliveries, ListNotifications, ListSubscriptions, NotificationsAfter, RetryDelivery,
    Subscribe, Unsubscribe,
};
use crate::actors::order::{GetOrder, LegOrder, OrderCommand, OrderReceipt, PlaceOrder};
use crate::actors::payment::GetPayment;
use crate::actors::projection::{GetStatus, ListByStatus, ListStatus, Page, StatusReport};
use crate::domain::delivery::{LegAct, LegCommand};
use crate::domain::order::Command;
use crate::domain::stay::Stay;
use crate::domain::subscription::{NewSubscription, Outgoing};
use crate::domain::{text, CustomerId, NewProduct, Notification, OrderRequest, Sku};
use crate::error::{NodeError, Refused};
use futures_util::{Stream, StreamExt};
use tracing::Instrument;

impl Node {
    // ---- products ----

    pub async fn add_product(&self, product: NewProduct) -> Result<bodies::Product, NodeError> {
        self.call(Service::Inventory, &self.inner.actors.inventory, AddProduct(product)).await.map(Into::into)
    }

    pub async fn product(&self, sku: &str) -> Result<bodies::Product, NodeError> {
        let sku = Sku::parse(sku).map_err(|_| NodeError::not_found("product", sku))?;
        self.call(Service::Inventory, &self.inner.actors.inventory, GetProduct(sku)).await.map(Into::into)
    }

    /// Adds `qty` to a product's stock, or the named `units`.
    pub async fn restock(
        &self,
        sku: &str,
        qty: Option<i64>,
        units: Vec<String>,
    ) -> Result<bodies::Product, NodeError> {
        let sku = Sku::parse(sku).map_err(|_| NodeError::not_found("product", sku))?;
        self.call(Service::Inventory, &self.inner.actors.inventory, Restock { sku, qty, units })
            .await
            .map(Into::into)
    }

    /// The units of a pool free for the whole range `from`..`to` (dates or
    /// date-times, as in an order).
    pub async fn availability(
        &self,
        sku: &str,
        from: &str,
        to: &str,
    ) -> Result<bodies::Availability, NodeError> {
        let sku = Sku::parse(sku).map_err(|_| NodeError::not_found("product", sku))?;
        let stay = Stay::parse(from, to)?;
        let msg = Availability { sku: sku.clone(), stay };
        let free = self.call(Service::Inventory, &self.inner.actors.inventory, msg).await?;
        Ok(bodies::Availability { sku, stay, free })
    }

    /// Takes a named unit out of service (`in_service` false: a driver off
    /// duty, a room under repair), or puts it back.
    pub async fn set_unit_in_service(
        &self,
        sku: &str,
        unit: &str,
        in_service: bool,
    ) -> Result<bodies::Product, NodeError> {
        let sku = Sku::parse(sku).map_err(|_| NodeError::not_found("product", sku))?;
        let msg = SetInService { sku, unit: unit.to_owned(), in_service };
        self.call(Service::Inventory, &self.inner.actors.inventory, msg).await.map(Into::into)
    }

    /// The inventory's reservation for an order, if it knows the order.
    pub async fn reservation(&self, order_id: &str) -> Result<Option<bodies::Reservation>, NodeError> {
        let id = order_id_of(order_id)?;
        let span = order_span(&id);
        self.call(Service::Inventory, &self.inner.actors.inventory, GetReservation(id))
            .instrument(span)
            .await
            .map(|found| found.map(Into::into))
    }

    // ---- orders ----

    /// Places an order; see [`PlaceOrder`] for the idempotency key.
    pub async fn place_order(
        &self,
        request: OrderRequest,
        idempotency_key: Option<String>,
    ) -> Result<OrderReceipt, NodeError> {
        let msg = PlaceOrder { request, idempotency_key };
        self.call(Service::Order, &self.inner.actors.order, msg).await
    }

    /// The command side's record of an order (always current).
    pub async fn order(&self, order_id: &str) -> Result<bodies::Order, NodeError> {
        let id = order_id_of(order_id)?;
        let span = order_span(&id);
        self.call(Service::Order, &self.inner.actors.order, GetOrder(id))
            .instrument(span)
            .await
            .map(Into::into)
    }

    /// The seller confirms the bank-transfer deposit.
    pub async fn confirm_deposit(&self, order_id: &str) -> Result<bodies::Order, NodeError> {
        self.command(order_id, Command::ConfirmDeposit).await
    }

    pub async fn cancel_order(&self, order_id: &str) -> Result<bodies::Order, NodeError> {
        self.command(order_id, Command::Cancel).await
    }

    /// The seller cancels, until the workflow's `seller_cancel_until`; what
    /// was paid is refunded, what was reserved released.
    pub async fn seller_cancel_order(&self, order_id: &str) -> Result<bodies::Order, NodeError> {
        self.command(order_id, Command::SellerCancel).await
    }

    /// The customer confirms receipt; the order closes.
    pub async fn confirm_receipt(&self, order_id: &str) -> Result<bodies::Order, NodeError> {
        self.command(order_id, Command::ConfirmReceipt).await
    }

    /// The fulfilling party (hotel, shop, driver) takes the order. Exactly
    /// one party wins; the others get [`Refused::Taken`].
    pub async fn accept_order(&self, order_id: &str, by: &str) -> Result<bodies::Order, NodeError> {
        self.command(order_id, Command::Accept { by: party(by)? }).await
    }

    /// The fulfilling party turns the order down; what was paid is refunded
    /// and what was reserved released.
    pub async fn reject_order(
        &self,
        order_id: &str,
        by: &str,
        reason: &str,
    ) -> Result<bodies::Order, NodeError> {
        self.command(order_id, Command::Reject { by: party(by)?, reason: reason_text(reason)? }).await
    }

    async fn command(&self, order_id: &str, command: Command) -> Result<bodies::Order, NodeError> {
        self.command_by(order_id, command, None).await
    }

    /// A command given by `by` (recorded with its events), when known.
    pub(super) async fn command_by(
        &self,
        order_id: &str,
        command: Command,
        by: Option<String>,
    ) -> Result<bodies::Order, NodeError> {
        let id = order_id_of(order_id)?;
        let span = order_span(&id);
        let msg = OrderCommand { order_id: id, command, by };
        self.call(Service::Order, &self.inner.actors.order, msg).instrument(span).await.map(Into::into)
    }

    /// The payment service's record for an order.
    pub async fn payment(&self, order_id: &str) -> Result<Option<bodies::Payment>, NodeError> {
        let id = order_id_of(order_id)?;
        let span = order_span(&id);
        self.call(Service::Payment, &self.inner.actors.payment, GetPayment(id))
            .instrument(span)
            .await
            .map(|found| found.map(Into::into))
    }

    // ---- delivery ----

    /// Completes the leg under way.
    pub async fn complete_delivery(&self, order_id: &str) -> Result<bodies::Delivery, NodeError> {
        self.leg(order_id, None, LegAct::Complete).await
    }

    /// Starts a leg (by name or number) that waits for an explicit start.
    pub async fn start_leg(&self, order_id: &str, leg: &str) -> Result<bodies::Delivery, NodeError> {
        self.leg(order_id, Some(leg), LegAct::Start).await
    }

    /// Completes a leg, which must be the one under way.
    pub async fn complete_leg(&self, order_id: &str, leg: &str) -> Result<bodies::Delivery, NodeError> {
        self.leg(order_id, Some(leg), LegAct::Complete).await
    }

    /// A checkpoint leg (customs) rejects the goods.
    pub async fn reject_leg(
        &self,
        order_id: &str,
        leg: &str,
        reason: &str,
    ) -> Result<bodies::Delivery, NodeError> {
        self.leg(order_id, Some(leg), LegAct::Reject(reason_text(reason)?)).await
    }

    /// A leg command, decided by the order service in turn with the order's
    /// other commands (see `actors::order::course`): a cancel and a leg
    /// start sent together never both win.
    async fn leg(
        &self,
        order_id: &str,
        leg: Option<&str>,
        act: LegAct,
    ) -> Result<bodies::Delivery, NodeError> {
        self.leg_by(order_id, leg, act, None).await
    }

    /// A leg command given by `by` (recorded with its events), when known.
    pub(super) async fn leg_by(
        &self,
        order_id: &str,
        leg: Option<&str>,
        act: LegAct,
        by: Option<String>,
    ) -> Result<bodies::Delivery, NodeError> {
        let order_id = order_id_of(order_id)?;
        let span = order_span(&order_id);
        let msg = LegOrder { order_id, command: LegCommand { leg: leg.map(str::to_owned), act, by } };
        self.call(Service::Order, &self.inner.actors.order, msg).instrument(span).await.map(Into::into)
    }

    pub async fn delivery(&self, order_id: &str) -> Result<bodies::Delivery, NodeError> {
        let id = order_id_of(order_id)?;
        let span = order_span(&id);
        self.call(Service::Delivery, &self.inner.actors.delivery, GetDelivery(id))
            .instrument(span)
            .await
            .map(Into::into)
    }

    // ---- read side ----

    /// The status view of an order and anything about it that needs an
    /// operator's attention. Built from events; it may lag the commands by a
    /// moment, but an order just acknowledged is there: a view not found is
    /// looked for again after the projection catches up with the log.
    pub async fn status(&self, order_id: &str) -> Result<StatusReport, NodeError> {
        let id = order_id_of(order_id)?;
        let span = order_span(&id);
        self.call(Service::Projection, &self.inner.actors.projection, GetStatus(id)).instrument(span).await
    }

    /// A page of a workflow's orders at `status` (optionally at one delivery
    /// leg), oldest first: the parties' work lists. `after` is a previous
    /// page's `next`; `limit` is capped at 500.
    pub async fn list(
        &self,
        workflow: &str,
        status: &str,
        leg: Option<&str>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page, NodeError> {
        let msg = ListByStatus::of(workflow, status, leg, after, limit)?;
        self.call(Service::Projection, &self.inner.actors.projection, msg).await
    }

    /// The status views of a customer's orders, oldest first.
    pub async fn statuses(&self, customer: &str) -> Result<Vec<StatusReport>, NodeError> {
        let customer = CustomerId::parse(customer)?;
        self.call(Service::Projection, &self.inner.actors.projection, ListStatus(customer)).await
    }

    /// A customer's notifications, oldest first.
    pub async fn notifications(&self, customer: &str) -> Result<Vec<Notification>, NodeError> {
        let customer = CustomerId::parse(customer)?;
        let msg = ListNotifications(customer);
        self.call(Service::Notification, &self.inner.actors.notification, msg).await
    }

    /// A customer's notifications after the event `after`, then live as
    /// they are written: what a page or an app follows an order with.
    pub async fn notification_stream(
        &self,
        customer: &str,
        after: u64,
    ) -> Result<impl Stream<Item = Notification> + use<>, NodeError> {
        let customer = CustomerId::parse(customer)?;
        // Listening first, then reading what was written: nothing falls
        // between the two, and what both hold is sent once.
        let live = self.inner.live.subscribe();
        let msg = ListNotifications(customer.clone());
        let backlog = self.call(Service::Notification, &self.inner.actors.notification, msg).await?;
        let backlog = futures_util::stream::iter(backlog.into_iter().map(Ok));
        Ok(follow(backlog, live, after, move |n, _| n.customer == customer))
    }

    /// The notifications of a workflow's orders, as they are written (a
    /// party's live work list: the taxi's new calls). A client that
    /// reconnects with the last event it saw (`resume`) first gets what it
    /// missed, from the log; without one the stream starts now.
    pub async fn workflow_stream(
        &self,
        workflow: &str,
        resume: Option<u64>,
    ) -> Result<impl Stream<Item = Notification> + use<>, NodeError> {
        let workflow = self.workflow(workflow)?.name.clone();
        self.workflows_stream(vec![workflow], resume).await
    }

    /// The notifications of the orders of every workflow where `party` (a
    /// role: "driver") has a step, as [`Node::workflow_stream`].
    pub async fn party_stream(
        &self,
        party: &str,
        resume: Option<u64>,
    ) -> Result<impl Stream<Item = Notification> + use<>, NodeError> {
        let workflows = self.inner.workflows.of_party(party);
        if workflows.is_empty() {
            return Err(NodeError::not_found("party with a step in any workflow", party));
        }
        self.workflows_stream(workflows, resume).await
    }

    async fn workflows_stream(
        &self,
        workflows: Vec<String>,
        resume: Option<u64>,
    ) -> Result<impl Stream<Item = Notification> + use<>, NodeError> {
        let live = self.inner.live.subscribe();
        let backlog = match resume {
            // The first page is read now, so that a node that cannot serve
            // it answers with an error rather than an empty stream.
            Some(after) => self.backlog(workflows.clone(), after).await?.boxed(),
            None => futures_util::stream::empty().boxed(),
        };
        let keep =
            move |_: &Notification, w: Option<&str>| w.is_some_and(|w| workflows.iter().any(|x| x == w));
        Ok(follow(backlog, live, resume.unwrap_or(0), keep))
    }

    /// The notifications of `workflows` after the event `after`, read from
    /// the log a page at a time (see [`NotificationsAfter`]).
    async fn backlog(
        &self,
        workflows: Vec<String>,
        after: u64,
    ) -> Result<impl Stream<Item = Result<Notification, NodeError>> + use<>, NodeError> {
        let node = self.clone();
        let page = move |after: u64| {
            let (node, workflows) = (node.clone(), workflows.clone());
            async move {
                let msg = NotificationsAfter { after, workflows, limit: BACKLOG_PAGE };
                node.call(Service::Notification, &node.inner.actors.notification, msg).await
            }
        };
        let first = page(after).await?;
        let pages = futures_util::stream::unfold(Some(Ok(first)), move |state| {
            let page = page.clone();
            async move {
                let current = match state? {
                    Ok(current) => current,
                    Err(e) => return Some((vec![Err(e)], None)),
                };
                let next = match current.done {
                    true => None,
                    false => Some(page(current.next).await),
                };
                Some((current.notifications.into_iter().map(|(n, _)| Ok(n)).collect(), next))
            }
        });
        Ok(pages.flat_map(futures_util::stream::iter))
    }

    // ---- webhooks ----

    /// Registers a webhook subscription, as the trusted operator.
    pub async fn subscribe(&self, new: NewSubscription) -> Result<bodies::Subscription, NodeError> {
        self.subscribe_as(new, "operator", None).await
    }

    pub(super) async fn subscribe_as(
        &self,
        new: NewSubscription,
        owner: &str,
        id: Option<u64>,
    ) -> Result<bodies::Subscription, NodeError> {
        self.check_subscription(&new)?;
        let msg = Subscribe { new, owner: owner.to_owned(), id };
        self.call(Service::Notification, &self.inner.actors.notification, msg).await.map(Into::into)
    }

    /// A subscription's workflow must exist, and its language be one that
    /// its workflow (or, without one, some workflow) speaks.
    fn check_subscription(&self, new: &NewSubscription) -> Result<(), NodeError> {
        let workflow = new.workflow.as_deref().map(|w| self.workflow(w)).transpose()?;
        let Some(lang) = new.lang.as_deref() else { return Ok(()) };
        let speaking: Vec<&crate::domain::Workflow> = match &workflow {
            Some(wf) => vec![&**wf],
            None => self.inner.workflows.all().collect(),
        };
        if speaking.iter().any(|wf| wf.speaks(lang)) {
            return Ok(());
        }
        let mut spoken: Vec<&str> = speaking.iter().flat_map(|wf| wf.languages()).collect();
        spoken.sort_unstable();
        spoken.dedup();
        let why = format!("lang {lang:?} is not spoken here; give one of {}", spoken.join(", "));
        Err(NodeError::Refused(Refused::Invalid(why)))
    }

    pub async fn subscriptions(&self) -> Result<Vec<bodies::Subscription>, NodeError> {
        let actor = &self.inner.actors.notification;
        let all = self.call(Service::Notification, actor, ListSubscriptions).await?;
        Ok(all.into_iter().map(Into::into).collect())
    }

    /// Drops a subscription and what waits in its queue.
    pub async fn unsubscribe(&self, id: u64) -> Result<(), NodeError> {
        self.call(Service::Notification, &self.inner.actors.notification, Unsubscribe(id)).await
    }

    /// Webhook deliveries set aside after failing for too long.
    pub async fn failed_deliveries(&self) -> Result<Vec<Outgoing>, NodeError> {
        self.call(Service::Notification, &self.inner.actors.notification, FailedDeliveries).await
    }

    /// Puts a set-aside delivery (`<subscription>-<event>`) back in its queue.
    pub async fn retry_delivery(&self, id: &str) -> Result<(), NodeError> {
        let parsed = id.split_once('-').and_then(|(s, e)| Some((s.parse().ok()?, e.parse().ok()?)));
        let (subscription, event) = parsed.ok_or_else(|| NodeError::not_found("delivery", id))?;
        let actor = &self.inner.actors.notification;
        self.call(Service::Notification, actor, RetryDelivery { subscription, event }).await
    }

    // ---- operations ----
}

/// Log events read for one page of a stream's backlog.
const BACKLOG_PAGE: usize = 512;

/// Longest party name or reason accepted.
const MAX_TEXT: usize = 200;

/// Who accepts or rejects: a name that shows as something.
fn party(by: &str) -> Result<String, NodeError> {
    Ok(text::free_text("by", by, MAX_TEXT)?)
}

pub(super) fn reason_text(reason: &str) -> Result<String, NodeError> {
    Ok(text::free_text("reason", reason, MAX_TEXT)?)
}
