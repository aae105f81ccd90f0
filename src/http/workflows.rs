//! `/workflows`: the workflows this node runs, as parties and consoles see
//! them (the statuses in the workflow's words, who takes each step).

use super::who::Who;
use crate::node::bodies::Workflow;
use crate::node::Node;
use actix_web::web::Data;
use actix_web::{get, HttpResponse};
use serde::Serialize;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_workflows);
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Workflows {
    /// By name.
    pub workflows: Vec<Workflow>,
}

/// The workflows this node runs, and which the caller may list the orders
/// of (its work lists).
#[utoipa::path(tag = "orders", responses((status = 200, description = "The workflows", body = Workflows)))]
#[get("/workflows")]
async fn list_workflows(node: Data<Node>, who: Who) -> HttpResponse {
    HttpResponse::Ok().json(Workflows { workflows: who.on(&node).workflows() })
}
