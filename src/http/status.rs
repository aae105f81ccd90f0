//! `/status`: the CQRS read side, served from the projection.

use super::who::Who;
use super::ApiError;
use crate::actors::projection::{Page, StatusReport};
use crate::domain::event::Seq;
use crate::node::Node;
use actix_web::web::{Data, Path, Query};
use actix_web::{get, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_statuses).service(get_status);
}

/// An order's status view: where it is, its history, what needs attention.
#[utoipa::path(
    tag = "status",
    params(("order_id" = String, Path, description = "The order's id")),
    responses((status = 200, description = "The status view", body = StatusReport))
)]
#[get("/status/{order_id}")]
async fn get_status(node: Data<Node>, who: Who, order_id: Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).status(&order_id).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ByCustomer {
    /// The customer whose orders these are.
    #[param(min_length = 1, max_length = 128, pattern = r"\S")]
    pub customer: String,
}

/// Either `customer`, or `workflow` and `status` (with optional `leg`,
/// `after` and `limit`).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct Listing {
    /// A customer's orders, oldest first (give nothing else).
    customer: Option<String>,
    /// A workflow's orders at `status` (a party's work list).
    workflow: Option<String>,
    /// The status, as the engine names it (`paid`, `accepted`, `in_delivery`).
    status: Option<String>,
    /// Only orders whose delivery is at this leg.
    leg: Option<String>,
    /// Continue after this cursor: a previous page's `next`.
    after: Option<u64>,
    /// Page size (default 50).
    limit: Option<usize>,
}

/// What `GET /status` answers: a customer's orders, or a page of a
/// workflow's orders at a status.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(super) enum StatusListing {
    Customer {
        customer: String,
        orders: Vec<StatusReport>,
    },
    Page {
        workflow: String,
        status: String,
        orders: Vec<StatusReport>,
        /// The cursor for the next page (`after=`); null on the last.
        next: Option<Seq>,
    },
}

/// Page size when none is asked for.
pub(super) const DEFAULT_LIMIT: usize = 50;

/// Which list a [`Listing`] asks for.
pub(super) enum Listed {
    Customer(String),
    Page { workflow: String, status: String, leg: Option<String>, after: Option<Seq>, limit: usize },
}

impl Listing {
    pub(super) fn listed(self) -> Result<Listed, ApiError> {
        match (self.customer, self.workflow, self.status) {
            (Some(customer), None, None) => Ok(Listed::Customer(customer)),
            (None, Some(workflow), Some(status)) => {
                let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
                Ok(Listed::Page { workflow, status, leg: self.leg, after: self.after, limit })
            }
            _ => Err(ApiError::BadQuery("give customer=C, or workflow=W and status=S".into())),
        }
    }
}

impl StatusListing {
    pub(super) fn page(workflow: String, status: String, page: Page) -> StatusListing {
        StatusListing::Page { workflow, status, orders: page.orders, next: page.next }
    }
}

/// A customer's orders (`customer=`), or a page of a workflow's orders
/// at a status (`workflow=`, `status=`, paged by `after=` and `limit=`).
#[utoipa::path(tag = "status", params(Listing), responses((status = 200, description = "The orders", body = StatusListing)))]
#[get("/status")]
async fn list_statuses(node: Data<Node>, who: Who, query: Query<Listing>) -> Result<HttpResponse, ApiError> {
    let node = who.on(&node);
    let listing = match query.into_inner().listed()? {
        Listed::Customer(customer) => {
            let orders = node.statuses(&customer).await?;
            StatusListing::Customer { customer, orders }
        }
        Listed::Page { workflow, status, leg, after, limit } => {
            let page = node.list(&workflow, &status, leg.as_deref(), after, limit).await?;
            StatusListing::page(workflow, status, page)
        }
    };
    Ok(HttpResponse::Ok().json(listing))
}
