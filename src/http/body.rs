//! Request bodies: JSON objects, and nothing else.
//!
//! serde accepts a JSON array for a struct (its fields in order), so
//! `[ "kim", [], "Seoul", "card" ]` would pass for an order. Every body is
//! read as a JSON value first, and only an object is turned into the
//! request type: anything else is a 422 that says what it got.

use super::error::ApiError;
use actix_web::dev::Payload;
use actix_web::web::Json;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A JSON object body, deserialised as `T`.
pub struct JsonObject<T>(pub T);

impl<T> JsonObject<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for JsonObject<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// What a JSON value is, for the message.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonObject<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // Content type, size and syntax are checked here, with the app's
        // `JsonConfig` (its errors are problem+json already).
        let json = Json::<Value>::from_request(req, payload);
        let limit = req.app_data::<actix_web::web::Data<crate::node::Node>>().map(|n| n.body_timeout());
        Box::pin(async move {
            // A body that trickles in (or never comes) would hold its
            // connection for ever: past the limit, 408 and the connection
            // closes (its body was not read to the end).
            let read = match limit {
                Some(limit) => {
                    tokio::time::timeout(limit, json).await.map_err(|_| ApiError::BodyTimeout(limit))?
                }
                None => json.await,
            };
            let Json(value) = read?;
            if !value.is_object() {
                let got = kind(&value);
                return Err(
                    ApiError::InvalidBody(format!("the body must be a JSON object, not {got}")).into()
                );
            }
            serde_json::from_value(value)
                .map(JsonObject)
                .map_err(|e| ApiError::InvalidBody(e.to_string()).into())
        })
    }
}

/// A JSON object body that may be left out (no body at all): `None` then.
/// A body that is there must be a valid one; it is never ignored.
pub struct OptionalJsonObject<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJsonObject<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let headers = req.headers();
        let length = headers.get(actix_web::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
        let chunked = headers.contains_key(actix_web::http::header::TRANSFER_ENCODING);
        if !chunked && length.is_none_or(|l| l.trim() == "0") {
            return Box::pin(async { Ok(OptionalJsonObject(None)) });
        }
        let body = JsonObject::<T>::from_request(req, payload);
        Box::pin(async move { Ok(OptionalJsonObject(Some(body.await?.0))) })
    }
}
