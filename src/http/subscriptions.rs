//! `/subscriptions`: webhooks that receive notifications as they happen.

use super::body::JsonObject;
use super::who::Who;
use super::ApiError;
use crate::domain::subscription::NewSubscription;
use crate::node::bodies::Subscription;
use crate::node::Node;
use actix_web::http::header;
use actix_web::web::{Data, Path};
use actix_web::{delete, get, post, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(subscribe).service(list_subscriptions).service(unsubscribe);
}

/// Subscribes a webhook: a customer to its own orders, a party to its
/// workflows' orders, the operator to anything. Deliveries are signed
/// (HMAC-SHA256) when a secret is given, and sent in order.
#[utoipa::path(tag = "subscriptions", request_body = NewSubscription, responses(
    (status = 201, description = "Subscribed", body = Subscription, headers(("Location" = String, description = "The subscription's URL")))
))]
#[post("/subscriptions")]
async fn subscribe(
    req: HttpRequest,
    node: Data<Node>,
    who: Who,
    body: JsonObject<NewSubscription>,
) -> Result<HttpResponse, ApiError> {
    let subscription = who.on(&node).subscribe_under(body.into_inner(), given_id(&node, &req)?).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/subscriptions/{}", subscription.id)))
        .json(subscription))
}

/// The id a shard keeps a subscription under: the one the router of this
/// machine says the cluster's first shard gave it. Believed only on a shard
/// and from this machine (a shard's server listens on loopback only, and
/// takes requests with the cluster's hop key only, which its router sends).
fn given_id(node: &Node, req: &HttpRequest) -> Result<Option<u64>, ApiError> {
    let Some(given) = req.headers().get(super::forward::SUBSCRIPTION_ID) else { return Ok(None) };
    let local = req.peer_addr().is_some_and(|peer| peer.ip().is_loopback());
    if node.shard().is_none() || !local {
        return Ok(None);
    }
    let id = given.to_str().ok().and_then(|id| id.parse().ok());
    id.map(Some)
        .ok_or_else(|| ApiError::BadQuery(format!("{} must be a number", super::forward::SUBSCRIPTION_ID)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Subscriptions {
    pub subscriptions: Vec<Subscription>,
}

/// The caller's subscriptions (the operator sees all).
#[utoipa::path(tag = "subscriptions", responses((status = 200, description = "The subscriptions", body = Subscriptions)))]
#[get("/subscriptions")]
async fn list_subscriptions(node: Data<Node>, who: Who) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(Subscriptions { subscriptions: who.on(&node).subscriptions().await? }))
}

/// Ends a subscription; deliveries not yet sent are dropped.
#[utoipa::path(
    tag = "subscriptions",
    params(("id" = u64, Path, description = "The subscription's id")),
    responses((status = 204, description = "Unsubscribed"))
)]
#[delete("/subscriptions/{id}")]
async fn unsubscribe(node: Data<Node>, who: Who, id: Path<u64>) -> Result<HttpResponse, ApiError> {
    who.on(&node).unsubscribe(id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
