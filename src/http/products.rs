//! `/products`: the catalog and its stock.

use super::body::JsonObject;
use super::who::Who;
use super::ApiError;
use crate::domain::NewProduct;
use crate::node::Node;
use actix_web::http::header;
use actix_web::web::{self, Data, Path, Query, ServiceConfig};
use actix_web::HttpResponse;
use serde::Deserialize;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/products", web::post().to(add))
        .route("/products/{sku}", web::get().to(get))
        .route("/products/{sku}/restock", web::post().to(restock))
        .route("/products/{sku}/availability", web::get().to(availability))
        .route("/products/{sku}/units/{unit}/out-of-service", web::post().to(out_of_service))
        .route("/products/{sku}/units/{unit}/in-service", web::post().to(in_service));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    from: String,
    to: String,
}

async fn availability(
    node: Data<Node>,
    who: Who,
    sku: Path<String>,
    range: Query<Range>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).availability(&sku, &range.from, &range.to).await?))
}

async fn out_of_service(
    node: Data<Node>,
    who: Who,
    path: Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (sku, unit) = path.into_inner();
    Ok(HttpResponse::Ok().json(who.on(&node).set_unit_in_service(&sku, &unit, false).await?))
}

async fn in_service(
    node: Data<Node>,
    who: Who,
    path: Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (sku, unit) = path.into_inner();
    Ok(HttpResponse::Ok().json(who.on(&node).set_unit_in_service(&sku, &unit, true).await?))
}

async fn add(node: Data<Node>, who: Who, body: JsonObject<NewProduct>) -> Result<HttpResponse, ApiError> {
    let product = who.on(&node).add_product(body.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/products/{}", product.sku)))
        .json(product))
}

async fn get(node: Data<Node>, who: Who, sku: Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).product(&sku).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestockBody {
    #[serde(default)]
    qty: Option<i64>,
    /// Named units to add (drivers, rooms).
    #[serde(default)]
    units: Vec<String>,
}

async fn restock(
    node: Data<Node>,
    who: Who,
    sku: Path<String>,
    body: JsonObject<RestockBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    Ok(HttpResponse::Ok().json(who.on(&node).restock(&sku, body.qty, body.units).await?))
}
