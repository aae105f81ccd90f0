//! The HTTP layer's error: every failure becomes an RFC 9457 problem
//! (`application/problem+json`) with a stable `type`.

use crate::error::NodeError;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse, Responder, ResponseError};
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The body is not JSON at all (syntax error, cut short).
    #[error("{0}")]
    MalformedBody(String),
    /// The body is JSON but not the expected shape (missing or mistyped field).
    #[error("{0}")]
    InvalidBody(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    BadQuery(String),
    #[error("no route for {0}")]
    NoRoute(String),
    /// The path is served, but not with this method: `Allow` lists those
    /// it is.
    #[error("{method} is not allowed on {path}; use {}", allow.join(", "))]
    MethodNotAllowed { method: String, path: String, allow: Vec<String> },
    /// No credentials, or credentials that name nobody.
    #[error("{0}")]
    Unauthorized(String),
    /// A body that did not arrive within `http.body_timeout_ms`.
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    #[error("the admin API is disabled; set admin.token (FULFIL_ADMIN__TOKEN) to enable it")]
    AdminDisabled,
    /// A request to a shard's own port without the cluster's hop key: only
    /// its node's router may call it.
    #[error(
        "this port serves one shard for its node's router only; send requests to the node's public port"
    )]
    NotRouted,
    #[error("too many requests from this client; retry in {0:?}")]
    RateLimited(std::time::Duration),
    /// A failover follower has no leader to forward to just now.
    #[error("{0}")]
    NoLeader(String),
}

/// The problem document (RFC 9457).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Problem {
    /// The kind of problem, stable for clients to branch on:
    /// `/problems/<slug>` (the document lists every one).
    #[serde(rename = "type")]
    kind: String,
    /// The kind's short summary, the same for every problem of the kind.
    title: &'static str,
    /// The HTTP status code.
    status: u16,
    /// What went wrong this time, for a person.
    detail: String,
}

impl ApiError {
    /// The stable slug of the problem `type`, and its title.
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::Node(e) => {
                let class = e.class();
                (class.problem, class.title)
            }
            ApiError::MalformedBody(_) => ("malformed-body", "The body is not valid JSON"),
            ApiError::InvalidBody(_) => ("invalid-body", "The body does not have the expected fields"),
            ApiError::UnsupportedMediaType(_) => ("unsupported-media-type", "The body must be JSON"),
            ApiError::PayloadTooLarge(_) => ("payload-too-large", "The body is too large"),
            ApiError::BadQuery(_) => ("invalid-query", "The query string is not valid"),
            ApiError::NoRoute(_) => ("not-found", "Not found"),
            ApiError::MethodNotAllowed { .. } => ("method-not-allowed", "The method is not allowed here"),
            ApiError::Unauthorized(_) => ("unauthorized", "Missing or unknown credentials"),
            ApiError::BodyTimeout(_) => ("request-timeout", "The request took too long to arrive"),
            ApiError::AdminDisabled => ("admin-disabled", "The admin API is disabled"),
            ApiError::NotRouted => ("not-routed", "Only the node's router calls a shard's port"),
            ApiError::RateLimited(_) => ("rate-limited", "Too many requests"),
            ApiError::NoLeader(_) => ("no-leader", "No node leads just now"),
        }
    }
}

impl ApiError {
    /// One error of every kind the API answers with.
    pub(crate) fn every_kind() -> Vec<ApiError> {
        let wait = Duration::from_secs(1);
        use crate::error::{CallError, Refused};
        use crate::store::StoreError;
        use std::time::Duration;
        let node: Vec<NodeError> = vec![
            Refused::Invalid("x".into()).into(),
            Refused::UnknownSku("x".into()).into(),
            Refused::NotFound { what: "order", id: "x".into() }.into(),
            Refused::Conflict("x".into()).into(),
            Refused::ProductExists("x".into()).into(),
            Refused::UnitInUse("x".into()).into(),
            Refused::NeedsAttention("x".into()).into(),
            Refused::Taken("x".into()).into(),
            Refused::PartyBusy("x".into()).into(),
            Refused::Forbidden("x".into()).into(),
            Refused::NothingAvailable { sku: "x".into(), dated: false }.into(),
            Refused::PaymentDeclined("x".into()).into(),
            Refused::IdempotencyMismatch.into(),
            Refused::IdempotencyInProgress.into(),
            CallError::Timeout { service: "order", after: wait }.into(),
            CallError::Unavailable("order").into(),
            CallError::Restarting { service: "order", retry_after: wait }.into(),
            CallError::Failed { service: "order", reason: "x".into() }.into(),
            CallError::Busy { service: "order", retry_after: wait }.into(),
            CallError::PaymentUnavailable { reason: "x".into(), retry_after: wait }.into(),
            CallError::Draining.into(),
            StoreError::Closed.into(),
            StoreError::Unavailable("disk full".into()).into(),
            StoreError::DuplicateAppend(1).into(),
        ];
        let mut all: Vec<ApiError> = node.into_iter().map(ApiError::Node).collect();
        all.extend([
            ApiError::MalformedBody("x".into()),
            ApiError::InvalidBody("x".into()),
            ApiError::UnsupportedMediaType("x".into()),
            ApiError::PayloadTooLarge("x".into()),
            ApiError::BadQuery("x".into()),
            ApiError::NoRoute("x".into()),
            ApiError::MethodNotAllowed { method: "PUT".into(), path: "/x".into(), allow: vec!["GET".into()] },
            ApiError::Unauthorized("x".into()),
            ApiError::BodyTimeout(wait),
            ApiError::AdminDisabled,
            ApiError::NotRouted,
            ApiError::RateLimited(wait),
            ApiError::NoLeader("x".into()),
        ]);
        all
    }

    /// Every problem `type` the API answers with: its status, slug and
    /// title, once each, for the OpenAPI document.
    pub(crate) fn problem_types() -> Vec<(u16, &'static str, &'static str)> {
        let mut kinds: Vec<_> = Self::every_kind()
            .iter()
            .map(|e| {
                let (slug, title) = e.kind();
                (e.status_code().as_u16(), slug, title)
            })
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        kinds
    }
}

impl ApiError {
    /// Whole seconds (at least 1) before a retry may succeed, for the
    /// `Retry-After` header.
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Node(e) => e.retry_after().map(whole_seconds),
            ApiError::RateLimited(d) => Some(whole_seconds(*d)),
            ApiError::NoLeader(_) => Some(1),
            _ => None,
        }
    }
}

/// `Retry-After` takes whole seconds: round up, at least 1.
fn whole_seconds(d: std::time::Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Node(e) => {
                StatusCode::from_u16(e.class().status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            ApiError::MalformedBody(_) | ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidBody(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NoRoute(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::AdminDisabled | ApiError::NotRouted => StatusCode::FORBIDDEN,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NoLeader(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (slug, title) = self.kind();
        if status.is_server_error() {
            // One line per kind of failure per interval: under a full disk
            // every request fails alike.
            if let Some(held_back) = crate::logging::ERRORS.allow(slug) {
                tracing::warn!(status = status.as_u16(), error = %self, held_back, "request failed");
            }
        }
        let problem = Problem {
            kind: format!("/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail: self.to_string(),
        };
        let mut response = HttpResponse::build(status);
        response.content_type(PROBLEM_JSON);
        if matches!(self, ApiError::Unauthorized(_)) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let ApiError::MethodNotAllowed { allow, .. } = self {
            response.insert_header((header::ALLOW, allow.join(", ")));
        }
        if let Some(after) = self.retry_after() {
            response.insert_header((header::RETRY_AFTER, after.to_string()));
        }
        response.json(problem)
    }
}

/// Lets a handler return the error itself (the default service does).
impl Responder for ApiError {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        self.error_response()
    }
}

impl From<JsonPayloadError> for ApiError {
    fn from(err: JsonPayloadError) -> Self {
        match err {
            JsonPayloadError::ContentType => {
                ApiError::UnsupportedMediaType("send the body as Content-Type: application/json".into())
            }
            JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::InvalidBody(e.to_string()),
            JsonPayloadError::Deserialize(e) => ApiError::MalformedBody(e.to_string()),
            JsonPayloadError::Overflow { limit } | JsonPayloadError::OverflowKnownLength { limit, .. } => {
                ApiError::PayloadTooLarge(format!("the body must be at most {limit} bytes"))
            }
            other => ApiError::MalformedBody(other.to_string()),
        }
    }
}

impl From<QueryPayloadError> for ApiError {
    fn from(err: QueryPayloadError) -> Self {
        ApiError::BadQuery(err.to_string())
    }
}

impl From<PathError> for ApiError {
    fn from(err: PathError) -> Self {
        ApiError::NoRoute(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_error_table_lists_every_problem_type_with_its_status() {
        let readme = include_str!("../../README.md");
        for e in ApiError::every_kind() {
            let (slug, _) = e.kind();
            let row = format!("| {} | `{slug}` |", e.status_code().as_u16());
            assert!(readme.contains(&row), "README's error table lacks {row}");
        }
    }

    #[test]
    fn every_409_has_a_type_of_its_own_cause() {
        let conflicts: Vec<&str> = ApiError::every_kind()
            .iter()
            .filter(|e| e.status_code() == StatusCode::CONFLICT)
            .map(|e| e.kind().0)
            .collect();
        let mut unique = conflicts.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), conflicts.len(), "{conflicts:?}");
        assert!(!conflicts.contains(&"conflict"), "no catch-all: {conflicts:?}");
    }
}
