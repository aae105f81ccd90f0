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

/// Whose notifications a stream follows.
#[derive(serde::Deserialize)]
struct Following {
    customer: Option<String>,
    workflow: Option<String>,
}

/// `GET /events?customer=C` (or `?workflow=W`): Server-Sent Events, one per
/// notification, with the event's sequence number as its id: a client that
/// reconnects with `Last-Event-ID` gets what it missed (a customer's; a
/// workflow's stream is live only), then the rest as it happens.
async fn stream(
    node: Data<Node>,
    who: Who,
    req: actix_web::HttpRequest,
    query: Query<Following>,
) -> Result<HttpResponse, ApiError> {
    let header = req.headers().get("Last-Event-ID").and_then(|v| v.to_str().ok());
    let after = match header.map(str::trim) {
        None | Some("") => 0,
        Some(id) => {
            id.parse().map_err(|_| ApiError::BadQuery(format!("Last-Event-ID {id:?} is not an event id")))?
        }
    };
    let acting = who.on(&node);
    let notifications = match (&query.customer, &query.workflow) {
        (Some(customer), None) => acting.notification_stream(customer, after).await?.boxed(),
        (None, Some(workflow)) => acting.workflow_stream(workflow, after)?.boxed(),
        _ => return Err(ApiError::BadQuery("give customer=C, or workflow=W".into())),
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
