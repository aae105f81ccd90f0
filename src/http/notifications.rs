//! `/notifications`: what each customer was told, oldest first.

use super::status::ByCustomer;
use super::who::Who;
use super::ApiError;
use crate::domain::Notification;
use crate::node::Node;
use actix_web::web::{Data, Query};
use actix_web::{get, HttpResponse};
use futures_util::StreamExt;
use serde::Serialize;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_notifications).service(stream_events);
}

/// Whose notifications a stream follows: one of these.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Following {
    /// A customer's notifications, from the first.
    customer: Option<String>,
    /// Every notification of a workflow's orders.
    workflow: Option<String>,
    /// Every notification of the workflows where this role (`driver`,
    /// `hotel`) has a step.
    party: Option<String>,
}

/// `GET /events?customer=C` (or `?workflow=W`, or `?party=P`, a role such
/// as `driver`): Server-Sent Events, one per notification, with the
/// event's sequence number as its id. A client that reconnects with
/// `Last-Event-ID` gets what it missed, then the rest as it happens. A
/// customer's stream starts with everything it was told; a workflow's or a
/// party's, without `Last-Event-ID`, starts now.
#[utoipa::path(
    tag = "notifications",
    params(
        Following,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event id (the `id:` of the last event received)")
    ),
    responses((
        status = 200,
        description = "`text/event-stream`: each event's `id` is its sequence number, its `event` the order's status, its `data` a Notification",
        content_type = "text/event-stream",
        body = Notification
    ))
)]
#[get("/events")]
async fn stream_events(
    node: Data<Node>,
    who: Who,
    req: actix_web::HttpRequest,
    query: Query<Following>,
) -> Result<HttpResponse, ApiError> {
    let header = req.headers().get("Last-Event-ID").and_then(|v| v.to_str().ok());
    let resume = match header.map(str::trim) {
        None | Some("") => None,
        Some(id) => Some(
            id.parse().map_err(|_| ApiError::BadQuery(format!("Last-Event-ID {id:?} is not an event id")))?,
        ),
    };
    let acting = who.on(&node);
    let notifications = match (&query.customer, &query.workflow, &query.party) {
        (Some(customer), None, None) => {
            acting.notification_stream(customer, resume.unwrap_or(0)).await?.boxed()
        }
        (None, Some(workflow), None) => acting.workflow_stream(workflow, resume).await?.boxed(),
        (None, None, Some(party)) => acting.party_stream(party, resume).await?.boxed(),
        _ => return Err(ApiError::BadQuery("give one of customer=C, workflow=W or party=P".into())),
    };
    let events = notifications.map(|n| {
        let data = serde_json::to_string(&n).unwrap_or_default();
        let frame = format!("id: {}\nevent: {}\ndata: {data}\n\n", n.event, n.status.as_str());
        Ok::<_, actix_web::Error>(actix_web::web::Bytes::from(frame))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(events))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct CustomerNotifications {
    pub customer: String,
    /// Oldest first.
    pub notifications: Vec<Notification>,
}

/// What a customer was told, oldest first.
#[utoipa::path(tag = "notifications", params(super::status::ByCustomer), responses((status = 200, description = "The customer's notifications", body = CustomerNotifications)))]
#[get("/notifications")]
async fn list_notifications(
    node: Data<Node>,
    who: Who,
    query: Query<ByCustomer>,
) -> Result<HttpResponse, ApiError> {
    let notifications = who.on(&node).notifications(&query.customer).await?;
    Ok(HttpResponse::Ok()
        .json(CustomerNotifications { customer: query.into_inner().customer, notifications }))
}
