//! `/notifications`: what each customer was told, oldest first.

use super::status::ByCustomer;
use super::who::Who;
use super::ApiError;
use crate::node::Node;
use actix_web::web::{self, Data, Query, ServiceConfig};
use actix_web::HttpResponse;
use futures_util::StreamExt;
use serde::Serialize;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/notifications", web::get().to(list)).route("/events", web::get().to(stream));
}

/// Whose notifications a stream follows: one of these.
#[derive(serde::Deserialize)]
struct Following {
    customer: Option<String>,
    workflow: Option<String>,
    party: Option<String>,
}

/// `GET /events?customer=C` (or `?workflow=W`, or `?party=P`, a role such
/// as `driver`): Server-Sent Events, one per notification, with the
/// event's sequence number as its id. A client that reconnects with
/// `Last-Event-ID` gets what it missed, then the rest as it happens. A
/// customer's stream starts with everything it was told; a workflow's or a
/// party's, without `Last-Event-ID`, starts now.
async fn stream(
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

#[derive(Serialize)]
struct Listing {
    customer: String,
    notifications: Vec<crate::domain::Notification>,
}

async fn list(node: Data<Node>, who: Who, query: Query<ByCustomer>) -> Result<HttpResponse, ApiError> {
    let notifications = who.on(&node).notifications(&query.customer).await?;
    Ok(HttpResponse::Ok().json(Listing { customer: query.into_inner().customer, notifications }))
}
