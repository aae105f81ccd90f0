//! Where each request goes when a cluster splits its orders over shards
//! (docs/multi-node.md, "shard groups"): the routing table of a node's
//! public port, which forwards to the node leading the request's shard.
//!
//! Every route of the API has its entry, and a test holds the table to
//! the OpenAPI document, so a route added to the API without a decision
//! here fails the build's tests rather than going to a wrong shard.

use crate::domain::shard::Shards;
use crate::domain::{OrderId, Sku};
use actix_web::http::Method;

/// Where a request is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// By the shard that holds this order (its id names it for good).
    Order(String),
    /// By the shard that holds this product, its stock and its units.
    Product(String),
    /// `POST /orders`: by the shard of the SKUs the body's items draw on
    /// ([`Shards::of_lines`]), or any shard for an order that draws on
    /// none.
    Placement,
    /// `POST /products`: by the shard of the body's `sku`.
    NewProduct,
    /// By the shard a `shard` query parameter names: an entry of a merged
    /// admin list (a dead letter, a failed webhook delivery) is numbered
    /// by its shard's store, and the merged list says which shard.
    Named,
    /// On every shard, each the same: subscriptions (each shard's
    /// notifications need them), fault injection, pausing a service.
    Everywhere,
    /// Read from every shard and merged (a customer's orders, work lists,
    /// what a customer was told, live streams), or from the shard a
    /// `shard` parameter names (admin lists, a backup, and those too).
    Merged,
    /// By the node asked, from what every node has: its health and
    /// metrics, the workflows, the API's document, the console's page.
    Node,
}

impl Route {
    /// The shard of a route that names its own, given the cluster's.
    /// `None` for the others, and for an id or SKU no shard could hold (the
    /// shard asked answers what is wrong with it).
    pub fn shard(&self, shards: Shards) -> Option<u32> {
        match self {
            Route::Order(id) => OrderId::parse(id).ok().map(|id| shards.of_order(&id)),
            Route::Product(sku) => Sku::parse(sku).ok().map(|sku| shards.of_sku(&sku)),
            _ => None,
        }
    }
}

/// Where `method` on `path` goes; `None` for a path the API does not
/// serve (any node answers that 404 or 405 itself).
pub fn route(method: &Method, path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let get = method == Method::GET;
    Some(match segments.as_slice() {
        ["orders"] => Route::Placement,
        ["orders", id, ..] | ["status", id] | ["deliveries", id, ..] | ["payments", id, ..] => {
            Route::Order((*id).to_owned())
        }
        ["products"] => Route::NewProduct,
        ["products", sku, ..] => Route::Product((*sku).to_owned()),
        ["status"] | ["notifications"] | ["events"] => Route::Merged,
        // Written to every shard; each holds them all, so one answers.
        ["subscriptions"] if get => Route::Node,
        ["subscriptions", ..] => Route::Everywhere,
        ["admin", "dead-letters" | "deliveries", .., "retry"] => Route::Named,
        ["admin", "dead-letters"] | ["admin", "deliveries", "failed"] | ["admin", "backup"] => Route::Merged,
        ["admin", "faults"] if get => Route::Merged,
        ["admin", "faults", ..] | ["admin", "services", ..] => Route::Everywhere,
        ["health", ..] | ["metrics"] | ["workflows"] | ["openapi.json"] | ["docs", ..] | ["console", ..] => {
            Route::Node
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(path: &str) -> Option<Route> {
        route(&Method::POST, path)
    }

    fn get(path: &str) -> Option<Route> {
        route(&Method::GET, path)
    }

    #[test]
    fn every_route_the_api_serves_has_its_place() {
        let document = crate::http::openapi::document();
        let mut checked = 0;
        for (template, item) in &document.paths.paths {
            let path = template.replace('{', "x").replace('}', "");
            let served = [
                (Method::GET, item.get.is_some()),
                (Method::POST, item.post.is_some()),
                (Method::PUT, item.put.is_some()),
                (Method::DELETE, item.delete.is_some()),
                (Method::PATCH, item.patch.is_some()),
            ];
            for (method, _) in served.into_iter().filter(|(_, served)| *served) {
                assert!(route(&method, &path).is_some(), "{method} {template} goes nowhere");
                checked += 1;
            }
        }
        assert!(checked >= 45, "only {checked} routes in the document");
    }

    #[test]
    fn an_orders_every_step_and_read_goes_to_its_shard() {
        for path in [
            "/orders/ord-1",
            "/orders/ord-1/cancel",
            "/status/ord-1",
            "/deliveries/ord-1/legs/pickup/start",
            "/payments/ord-1/confirm",
        ] {
            assert_eq!(route(&Method::POST, path), Some(Route::Order("ord-1".into())), "{path}");
        }
        let shards = Shards::new(16);
        let id = OrderId::parse("ord-1").unwrap();
        assert_eq!(Route::Order("ord-1".into()).shard(shards), Some(shards.of_order(&id)));
        assert_eq!(Route::Order("a b".into()).shard(shards), None, "no shard holds an invalid id");
    }

    #[test]
    fn a_products_reads_and_stock_go_to_its_shard() {
        assert_eq!(post("/products/latte/restock"), Some(Route::Product("latte".into())));
        assert_eq!(get("/products/room/availability"), Some(Route::Product("room".into())));
        assert_eq!(post("/products/driver/units/d1/out-of-service"), Some(Route::Product("driver".into())));
        let shards = Shards::new(16);
        let sku = Sku::parse("latte").unwrap();
        assert_eq!(Route::Product("latte".into()).shard(shards), Some(shards.of_sku(&sku)));
    }

    #[test]
    fn new_orders_and_products_are_placed_by_their_body() {
        assert_eq!(post("/orders"), Some(Route::Placement));
        assert_eq!(post("/products"), Some(Route::NewProduct));
        assert_eq!(Route::Placement.shard(Shards::new(4)), None, "the body decides");
    }

    #[test]
    fn lists_merge_and_settings_go_everywhere() {
        assert_eq!(get("/status"), Some(Route::Merged));
        assert_eq!(get("/events"), Some(Route::Merged));
        assert_eq!(get("/admin/dead-letters"), Some(Route::Merged));
        assert_eq!(post("/admin/dead-letters/7/retry"), Some(Route::Named));
        assert_eq!(post("/admin/deliveries/failed/7/retry"), Some(Route::Named));
        assert_eq!(post("/subscriptions"), Some(Route::Everywhere));
        assert_eq!(route(&Method::DELETE, "/subscriptions/3"), Some(Route::Everywhere));
        assert_eq!(get("/subscriptions"), Some(Route::Node));
        assert_eq!(post("/admin/faults/payment"), Some(Route::Everywhere));
        assert_eq!(get("/admin/faults"), Some(Route::Merged));
        assert_eq!(get("/health/ready"), Some(Route::Node));
        assert_eq!(get("/nowhere"), None);
    }
}
