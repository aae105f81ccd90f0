//! `/products`: the catalog and its stock.

use super::body::JsonObject;
use super::who::Who;
use super::ApiError;
use crate::domain::NewProduct;
use crate::node::bodies::{Availability, Product};
use crate::node::Node;
use actix_web::http::header;
use actix_web::web::{Data, Path, Query};
use actix_web::{get, post, HttpResponse};
use serde::Deserialize;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(add_product)
        .service(get_product)
        .service(restock_product)
        .service(availability)
        .service(out_of_service)
        .service(in_service);
}

/// A range of dates or date-times, as in an order's `from` and `to`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Range {
    /// The first night (`2027-03-01`) or the start (RFC 3339).
    #[param(min_length = 1, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}")]
    pub from: String,
    /// The morning of leaving, or the end (exclusive).
    #[param(min_length = 1, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}")]
    pub to: String,
}

/// The units of a pool that are free for the whole range.
#[utoipa::path(tag = "products", params(("sku" = String, Path, description = "The product's sku"), Range), responses((status = 200, description = "The free units", body = Availability)))]
#[get("/products/{sku}/availability")]
async fn availability(
    node: Data<Node>,
    who: Who,
    sku: Path<String>,
    range: Query<Range>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).availability(&sku, &range.from, &range.to).await?))
}

/// Takes a unit out of service (a driver off duty, a room under repair).
#[utoipa::path(tag = "products", params(("sku" = String, Path, description = "The product's sku"), ("unit" = String, Path, description = "A named unit of the pool (a driver, a room)")), responses((status = 200, description = "The product after the change", body = Product)))]
#[post("/products/{sku}/units/{unit}/out-of-service")]
async fn out_of_service(
    node: Data<Node>,
    who: Who,
    path: Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (sku, unit) = path.into_inner();
    Ok(HttpResponse::Ok().json(who.on(&node).set_unit_in_service(&sku, &unit, false).await?))
}

/// Puts a unit back in service.
#[utoipa::path(tag = "products", params(("sku" = String, Path, description = "The product's sku"), ("unit" = String, Path, description = "A named unit of the pool (a driver, a room)")), responses((status = 200, description = "The product after the change", body = Product)))]
#[post("/products/{sku}/units/{unit}/in-service")]
async fn in_service(
    node: Data<Node>,
    who: Who,
    path: Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (sku, unit) = path.into_inner();
    Ok(HttpResponse::Ok().json(who.on(&node).set_unit_in_service(&sku, &unit, true).await?))
}

/// Adds a product to the catalog: counted stock, or a pool of named units.
#[utoipa::path(tag = "products", request_body = crate::domain::NewProduct, responses(
    (status = 201, description = "Added", body = Product, headers(("Location" = String, description = "The product's URL")))
))]
#[post("/products")]
async fn add_product(
    node: Data<Node>,
    who: Who,
    body: JsonObject<NewProduct>,
) -> Result<HttpResponse, ApiError> {
    let product = who.on(&node).add_product(body.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/products/{}", product.sku)))
        .json(product))
}

/// A product: price, stock, units.
#[utoipa::path(tag = "products", params(("sku" = String, Path, description = "The product's sku")), responses((status = 200, description = "The product", body = Product)))]
#[get("/products/{sku}")]
async fn get_product(node: Data<Node>, who: Who, sku: Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).product(&sku).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Restock {
    /// Units to add to (or, negative, take from) counted stock.
    #[serde(default)]
    qty: Option<i64>,
    /// Named units to add (drivers, rooms).
    #[serde(default)]
    units: Vec<String>,
}

/// Adds stock, or named units to a pool.
#[utoipa::path(tag = "products", params(("sku" = String, Path, description = "The product's sku")), request_body = Restock, responses((status = 200, description = "The product after the change", body = Product)))]
#[post("/products/{sku}/restock")]
async fn restock_product(
    node: Data<Node>,
    who: Who,
    sku: Path<String>,
    body: JsonObject<Restock>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    Ok(HttpResponse::Ok().json(who.on(&node).restock(&sku, body.qty, body.units).await?))
}
