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
pub(super) struct Following {
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
    let resume = resume_of(&req)?;
    let acting = who.on(&node);
    let notifications = match query.whose()? {
        Whose::Customer(customer) => acting.notification_stream(customer, resume.unwrap_or(0)).await?.boxed(),
        Whose::Workflow(workflow) => acting.workflow_stream(workflow, resume).await?.boxed(),
        Whose::Party(party) => acting.party_stream(party, resume).await?.boxed(),
    };
    Ok(sse(notifications))
}

/// The one stream a [`Following`] query asks for.
pub(super) enum Whose<'a> {
    Customer(&'a str),
    Workflow(&'a str),
    Party(&'a str),
}

impl Following {
    pub(super) fn whose(&self) -> Result<Whose<'_>, ApiError> {
        match (&self.customer, &self.workflow, &self.party) {
            (Some(customer), None, None) => Ok(Whose::Customer(customer)),
            (None, Some(workflow), None) => Ok(Whose::Workflow(workflow)),
            (None, None, Some(party)) => Ok(Whose::Party(party)),
            _ => Err(ApiError::BadQuery("give one of customer=C, workflow=W or party=P".into())),
        }
    }
}

/// The event a client reconnects after (`Last-Event-ID`), if it says.
pub(super) fn resume_of(req: &actix_web::HttpRequest) -> Result<Option<u64>, ApiError> {
    let header = req.headers().get("Last-Event-ID").and_then(|v| v.to_str().ok());
    match header.map(str::trim) {
        None | Some("") => Ok(None),
        Some(id) => id
            .parse()
            .map(Some)
            .map_err(|_| ApiError::BadQuery(format!("Last-Event-ID {id:?} is not an event id"))),
    }
}

/// Server-Sent Events, one per notification, its id the event's sequence.
pub(super) fn sse(notifications: impl futures_util::Stream<Item = Notification> + 'static) -> HttpResponse {
    let events = notifications.map(|n| {
        let data = serde_json::to_string(&n).unwrap_or_default();
        let frame = format!("id: {}\nevent: {}\ndata: {data}\n\n", n.event, n.status.as_str());
        Ok::<_, actix_web::Error>(actix_web::web::Bytes::from(frame))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(events)
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
