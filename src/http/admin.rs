//! `/admin`: operators' tools, behind a bearer token (`admin.token`).
//! Dead letters, fault injection, pausing a service's consumption.

use super::body::JsonObject;
use super::ApiError;
use crate::domain::access::Principal;
use crate::error::{NodeError, Refused};
use crate::faults::FaultSpec;
use crate::node::Node;
use crate::service::Service;
use actix_web::web::{self, Data, Path, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/admin/dead-letters", web::get().to(dead_letters))
        .route("/admin/dead-letters/{id}/retry", web::post().to(retry))
        .route("/admin/faults", web::get().to(faults))
        .route("/admin/faults", web::delete().to(clear_all))
        .route("/admin/faults/{service}", web::post().to(inject))
        .route("/admin/faults/{service}", web::delete().to(clear))
        .route("/admin/services/{service}/pause", web::post().to(pause))
        .route("/admin/services/{service}/resume", web::post().to(resume))
        .route("/admin/backup", web::post().to(backup))
        .route("/admin/deliveries/failed", web::get().to(failed_deliveries))
        .route("/admin/deliveries/failed/{id}/retry", web::post().to(retry_delivery));
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

async fn failed_deliveries(node: Data<Node>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    Ok(HttpResponse::Ok().json(json!({ "deliveries": node.failed_deliveries().await? })))
}

async fn retry_delivery(
    node: Data<Node>,
    req: HttpRequest,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    node.retry_delivery(&id).await?;
    Ok(HttpResponse::Ok().json(json!({ "requeued": id.into_inner() })))
}

fn service(name: &str) -> Result<Service, ApiError> {
    Service::parse(name).ok_or_else(|| ApiError::NoRoute(format!("service {name}")))
}

async fn dead_letters(node: Data<Node>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    Ok(HttpResponse::Ok().json(json!({ "dead_letters": node.dead_letters().await? })))
}

async fn retry(node: Data<Node>, req: HttpRequest, id: Path<String>) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    let id: u64 = id.parse().map_err(|_| ApiError::NoRoute(format!("dead letter {id}")))?;
    node.retry_dead_letter(id).await?;
    Ok(HttpResponse::Ok().json(json!({ "retried": id })))
}

async fn faults(node: Data<Node>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    Ok(HttpResponse::Ok().json(node.faults()))
}

async fn inject(
    node: Data<Node>,
    req: HttpRequest,
    name: Path<String>,
    spec: JsonObject<FaultSpec>,
) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    node.inject_fault_named(&name, spec.into_inner())?;
    Ok(HttpResponse::Ok().json(node.faults()))
}

async fn clear(node: Data<Node>, req: HttpRequest, name: Path<String>) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    node.clear_fault_named(&name)?;
    Ok(HttpResponse::Ok().json(node.faults()))
}

async fn clear_all(node: Data<Node>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    node.clear_faults(None);
    Ok(HttpResponse::Ok().json(node.faults()))
}

/// Where a backup goes, on the node's machine.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupBody {
    to: std::path::PathBuf,
}

async fn backup(
    node: Data<Node>,
    req: HttpRequest,
    body: JsonObject<BackupBody>,
) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    let report = node.backup(body.into_inner().to).await?;
    Ok(HttpResponse::Ok().json(report))
}

async fn pause(node: Data<Node>, req: HttpRequest, name: Path<String>) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    node.pause(service(&name)?).await?;
    Ok(HttpResponse::Ok().json(node.health()))
}

async fn resume(node: Data<Node>, req: HttpRequest, name: Path<String>) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    node.resume(service(&name)?).await?;
    Ok(HttpResponse::Ok().json(node.health()))
}
