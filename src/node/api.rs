//! The business calls of the embedding API.

use super::{order_id_of, Node, Service};
use crate::actors::delivery::{CompleteDelivery, Delivery, GetDelivery};
use crate::actors::inventory::{AddProduct, GetProduct, GetReservation, Reservation, Restock};
use crate::actors::notification::ListNotifications;
use crate::actors::order::{GetOrder, OrderCommand, OrderReceipt, PlaceOrder};
use crate::actors::payment::{GetPayment, PaymentRecord};
use crate::actors::projection::{GetStatus, ListStatus, StatusReport};
use crate::actors::NodeError;
use crate::domain::order::Command;
use crate::domain::{CustomerId, NewProduct, Notification, Order, OrderRequest, Product, Sku, StatusView};

impl Node {
    // ---- products ----

    pub async fn add_product(&self, product: NewProduct) -> Result<Product, NodeError> {
        self.call(Service::Inventory, &self.inner.actors.inventory, AddProduct(product)).await
    }

    pub async fn product(&self, sku: &str) -> Result<Product, NodeError> {
        let sku = Sku::parse(sku).map_err(|_| NodeError::not_found("product", sku))?;
        self.call(Service::Inventory, &self.inner.actors.inventory, GetProduct(sku)).await
    }

    pub async fn restock(&self, sku: &str, qty: i64) -> Result<Product, NodeError> {
        let sku = Sku::parse(sku).map_err(|_| NodeError::not_found("product", sku))?;
        self.call(Service::Inventory, &self.inner.actors.inventory, Restock { sku, qty }).await
    }

    /// The inventory's reservation for an order, if it knows the order.
    pub async fn reservation(&self, order_id: &str) -> Result<Option<Reservation>, NodeError> {
        let id = order_id_of(order_id)?;
        self.call(Service::Inventory, &self.inner.actors.inventory, GetReservation(id)).await
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
    pub async fn order(&self, order_id: &str) -> Result<Order, NodeError> {
        let id = order_id_of(order_id)?;
        self.call(Service::Order, &self.inner.actors.order, GetOrder(id)).await
    }

    /// The seller confirms the bank-transfer deposit.
    pub async fn confirm_deposit(&self, order_id: &str) -> Result<Order, NodeError> {
        self.command(order_id, Command::ConfirmDeposit).await
    }

    pub async fn cancel_order(&self, order_id: &str) -> Result<Order, NodeError> {
        self.command(order_id, Command::Cancel).await
    }

    /// The customer confirms receipt; the order closes.
    pub async fn confirm_receipt(&self, order_id: &str) -> Result<Order, NodeError> {
        self.command(order_id, Command::ConfirmReceipt).await
    }

    async fn command(&self, order_id: &str, command: Command) -> Result<Order, NodeError> {
        let msg = OrderCommand { order_id: order_id_of(order_id)?, command };
        self.call(Service::Order, &self.inner.actors.order, msg).await
    }

    /// The payment service's record for an order.
    pub async fn payment(&self, order_id: &str) -> Result<Option<PaymentRecord>, NodeError> {
        let id = order_id_of(order_id)?;
        self.call(Service::Payment, &self.inner.actors.payment, GetPayment(id)).await
    }

    // ---- delivery ----

    /// The courier reports the delivery complete.
    pub async fn complete_delivery(&self, order_id: &str) -> Result<Delivery, NodeError> {
        let id = order_id_of(order_id)?;
        self.call(Service::Delivery, &self.inner.actors.delivery, CompleteDelivery(id)).await
    }

    pub async fn delivery(&self, order_id: &str) -> Result<Delivery, NodeError> {
        let id = order_id_of(order_id)?;
        self.call(Service::Delivery, &self.inner.actors.delivery, GetDelivery(id)).await
    }

    // ---- read side ----

    /// The status view of an order and anything about it that needs an
    /// operator's attention. Built from events; it may lag the commands by a
    /// moment.
    pub async fn status(&self, order_id: &str) -> Result<StatusReport, NodeError> {
        let id = order_id_of(order_id)?;
        self.call(Service::Projection, &self.inner.actors.projection, GetStatus(id)).await
    }

    /// The status views of a customer's orders, oldest first.
    pub async fn statuses(&self, customer: &str) -> Result<Vec<StatusView>, NodeError> {
        let customer = CustomerId::parse(customer)?;
        self.call(Service::Projection, &self.inner.actors.projection, ListStatus(customer)).await
    }

    /// A customer's notifications, oldest first.
    pub async fn notifications(&self, customer: &str) -> Result<Vec<Notification>, NodeError> {
        let customer = CustomerId::parse(customer)?;
        let msg = ListNotifications(customer);
        self.call(Service::Notification, &self.inner.actors.notification, msg).await
    }

    // ---- operations ----
}
