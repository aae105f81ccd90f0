//! Who a request is by: authenticated once at the edge (see `admit`), kept
//! in the request's extensions, and handed to handlers as [`Who`].

use super::ApiError;
use crate::domain::access::Principal;
use crate::node::Node;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use std::future::{ready, Ready};

/// The authenticated principal of a request.
pub struct Who(pub Principal);

/// Authenticates `req` against `node`'s keys: the principal, or a 401.
pub fn authenticate(node: &Node, req: &HttpRequest) -> Result<Principal, ApiError> {
    let header = req.headers().get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("?"));
    node.authenticate(header).map_err(|e| ApiError::Unauthorized(e.to_string()))
}

impl FromRequest for Who {
    type Error = actix_web::Error;
    type Future = Ready<Result<Who, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Some(principal) = req.extensions().get::<Principal>() {
            return ready(Ok(Who(principal.clone())));
        }
        // Mounted without the edge middleware: authenticate here.
        let node = req.app_data::<actix_web::web::Data<Node>>();
        let found = match node {
            Some(node) => authenticate(node, req),
            None => Err(ApiError::Unauthorized("no node to authenticate against".into())),
        };
        ready(found.map(Who).map_err(Into::into))
    }
}

impl Who {
    /// The node, acting as this principal.
    pub fn on<'a>(&self, node: &'a Node) -> crate::node::Acting<'a> {
        node.acting(self.0.clone())
    }
}

/// Marks `req` as made by `principal`, for [`Who`].
pub fn remember(req: &HttpRequest, principal: Principal) {
    req.extensions_mut().insert(principal);
}
