//! `/admin`: operators' tools, behind a bearer token (`admin.token`).
//! Dead letters, fault injection, pausing a service's consumption.

use super::body::JsonObject;
use super::ApiError;
use crate::domain::access::Principal;
use crate::domain::subscription::Outgoing;
use crate::error::{NodeError, Refused};
use crate::faults::FaultSpec;
use crate::node::bodies::DeadLetter;
use crate::node::HealthReport;
use crate::node::Node;
use crate::service::Service;
use crate::store::BackupReport;
use actix_web::web::{Data, Path};
use actix_web::{delete, get, post, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_dead_letters)
        .service(retry_dead_letter)
        .service(list_faults)
        .service(clear_faults)
        .service(inject_fault)
        .service(clear_fault)
        .service(pause_service)
        .service(resume_service)
        .service(back_up)
        .service(list_failed_deliveries)
        .service(retry_delivery);
}

#[derive(Serialize, utoipa::ToSchema)]
struct DeadLetters {
    /// Oldest first.
    #[schema(value_type = Vec<crate::store::DeadLetter>)]
    dead_letters: Vec<DeadLetter>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Retried {
    /// The dead letter's id.
    retried: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
struct FailedDeliveries {
    deliveries: Vec<Outgoing>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Requeued {
    /// The delivery's id.
    requeued: String,
}

/// Lets the admin through: the admin principal (an API key for "admin",
/// or `admin.token`), authenticated at the edge.
fn authorize(node: &Node, req: &HttpRequest) -> Result<(), ApiError> {
    let principal = super::who::authenticate(node, req)?;
    match principal {
        Principal::Admin => Ok(()),
        Principal::Open if !node.admin_enabled() => Err(ApiError::AdminDisabled),
        Principal::Open => {
            Err(ApiError::Unauthorized("the admin API needs Authorization: Bearer <admin key>".into()))
        }
        other => {
            Err(NodeError::Refused(Refused::Forbidden(format!("the admin API is for admin, not {other}")))
                .into())
        }
    }
}

/// Webhook deliveries set aside after their retries ran out.
#[utoipa::path(tag = "admin", responses((status = 200, description = "The failed deliveries", body = FailedDeliveries)))]
#[get("/admin/deliveries/failed")]
async fn list_failed_deliveries(node: Data<Node>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    Ok(HttpResponse::Ok().json(FailedDeliveries { deliveries: node.failed_deliveries().await? }))
}

/// Sends a failed delivery again.
#[utoipa::path(tag = "admin", params(("id" = String, Path, description = "The delivery's id")), responses((status = 200, description = "Queued again", body = Requeued)))]
#[post("/admin/deliveries/failed/{id}/retry")]
async fn retry_delivery(
    node: Data<Node>,
    req: HttpRequest,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    node.retry_delivery(&id).await?;
    Ok(HttpResponse::Ok().json(Requeued { requeued: id.into_inner() }))
}

fn service(name: &str) -> Result<Service, ApiError> {
    Service::parse(name).ok_or_else(|| ApiError::NoRoute(format!("service {name}")))
}

/// Events a service set aside after failing on them repeatedly.
#[utoipa::path(tag = "admin", responses((status = 200, description = "The dead letters", body = DeadLetters)))]
#[get("/admin/dead-letters")]
async fn list_dead_letters(node: Data<Node>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    Ok(HttpResponse::Ok().json(DeadLetters { dead_letters: node.dead_letters().await? }))
}

/// Hands a dead letter back to its service.
#[utoipa::path(tag = "admin", params(("id" = u64, Path, description = "The dead letter's id")), responses((status = 200, description = "Handed back", body = Retried)))]
#[post("/admin/dead-letters/{id}/retry")]
async fn retry_dead_letter(
    node: Data<Node>,
    req: HttpRequest,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    let id: u64 = id.parse().map_err(|_| ApiError::NoRoute(format!("dead letter {id}")))?;
    node.retry_dead_letter(id).await?;
    Ok(HttpResponse::Ok().json(Retried { retried: id }))
}

/// The faults injected now, by service.
#[utoipa::path(tag = "admin", responses((status = 200, description = "The faults", body = BTreeMap<String, FaultSpec>)))]
#[get("/admin/faults")]
async fn list_faults(node: Data<Node>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    Ok(HttpResponse::Ok().json(node.faults()))
}

/// Injects a fault into a service (panics, delays, failures), for drills.
#[utoipa::path(tag = "admin", params(("service" = String, Path, description = "A service: order, payment, inventory, delivery, notification, projection")), request_body = FaultSpec, responses((status = 200, description = "The faults now", body = BTreeMap<String, FaultSpec>)))]
#[post("/admin/faults/{service}")]
async fn inject_fault(
    node: Data<Node>,
    req: HttpRequest,
    name: Path<String>,
    spec: JsonObject<FaultSpec>,
) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    node.inject_fault_named(&name, spec.into_inner())?;
    Ok(HttpResponse::Ok().json(node.faults()))
}

/// Clears a service's fault.
#[utoipa::path(tag = "admin", params(("service" = String, Path, description = "A service: order, payment, inventory, delivery, notification, projection")), responses((status = 200, description = "The faults now", body = BTreeMap<String, FaultSpec>)))]
#[delete("/admin/faults/{service}")]
async fn clear_fault(
    node: Data<Node>,
    req: HttpRequest,
    name: Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    node.clear_fault_named(&name)?;
    Ok(HttpResponse::Ok().json(node.faults()))
}

/// Clears every fault.
#[utoipa::path(tag = "admin", responses((status = 200, description = "The faults now (none)", body = BTreeMap<String, FaultSpec>)))]
#[delete("/admin/faults")]
async fn clear_faults(node: Data<Node>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    node.clear_faults(None);
    Ok(HttpResponse::Ok().json(node.faults()))
}

/// Where a backup goes, on the node's machine.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct BackupTo {
    /// A directory on the node's machine that does not exist yet.
    #[schema(value_type = String)]
    to: std::path::PathBuf,
}

/// Copies the store, consistent at one point of the log, to a new directory.
#[utoipa::path(tag = "admin", request_body = BackupTo, responses((status = 200, description = "Written", body = BackupReport)))]
#[post("/admin/backup")]
async fn back_up(
    node: Data<Node>,
    req: HttpRequest,
    body: JsonObject<BackupTo>,
) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    let report = node.backup(body.into_inner().to).await?;
    Ok(HttpResponse::Ok().json(report))
}

/// Pauses a service's consumption of the log (events wait, nothing is lost).
#[utoipa::path(tag = "admin", params(("service" = String, Path, description = "A service: order, payment, inventory, delivery, notification, projection")), responses((status = 200, description = "The node's health after", body = HealthReport)))]
#[post("/admin/services/{service}/pause")]
async fn pause_service(
    node: Data<Node>,
    req: HttpRequest,
    name: Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    node.pause(service(&name)?).await?;
    Ok(HttpResponse::Ok().json(node.health()))
}

/// Resumes a paused service.
#[utoipa::path(tag = "admin", params(("service" = String, Path, description = "A service: order, payment, inventory, delivery, notification, projection")), responses((status = 200, description = "The node's health after", body = HealthReport)))]
#[post("/admin/services/{service}/resume")]
async fn resume_service(
    node: Data<Node>,
    req: HttpRequest,
    name: Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    node.resume(service(&name)?).await?;
    Ok(HttpResponse::Ok().json(node.health()))
}
