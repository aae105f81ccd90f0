//! The API's OpenAPI 3.1 document (`GET /openapi.json`) and a page that
//! renders it (`/docs`, Swagger UI, vendored in the binary).
//!
//! The document is not written by hand: each handler carries its
//! `#[utoipa::path]` annotation, and utoipa-actix-web collects it as
//! `http::api` registers the handler. The same function registers the
//! routes the node serves, so a route cannot be served and left out, or
//! documented and not served. What every operation shares (the problem
//! responses, `Retry-After`, who may call) is added here, once, from the
//! code that produces it: the problem `type`s are [`ApiError`]'s own list.

use super::error::{ApiError, Problem, PROBLEM_JSON};
use actix_web::{get, HttpResponse};
use std::sync::OnceLock;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{Object, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, OpenApi, RefOr};
use utoipa_actix_web::AppExt;

/// Where the document is served.
pub const DOCUMENT: &str = "/openapi.json";
/// Where the page that renders it is served (outside the document: it is
/// HTML for people, not part of the API).
pub const DOCS: &str = "/docs";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "fulfil",
        description = "An order-fulfilment runtime: orders flow through payment, stock, acceptance, \
            delivery and notification on one engine, configured per workflow (shop, hotel, \
            designated driver, overseas purchase, taxi).\n\n\
            Every error is an RFC 9457 problem (`application/problem+json`) whose `type` is one \
            of those listed on the `Problem` schema. A node with keys wants \
            `Authorization: Bearer <key or JWT>`; a party may take only the steps its workflow \
            gives it and sees only its own orders.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0")
    ),
    tags(
        (name = "orders", description = "Placing orders and the steps taken on them"),
        (name = "status", description = "The read side: status views, work lists"),
        (name = "products", description = "The catalog, its stock and its named units"),
        (name = "payments", description = "Confirming bank-transfer deposits"),
        (name = "deliveries", description = "Delivery legs, reported by couriers and checkpoints"),
        (name = "notifications", description = "What customers and parties were told, and live streams"),
        (name = "subscriptions", description = "Webhooks"),
        (name = "admin", description = "The operator's tools (admin key or token)"),
        (name = "node", description = "Health, metrics and this document"),
    ),
    components(schemas(Problem)),
    modifiers(&Conventions)
)]
struct ApiDoc;

/// The document, built once: the routes are registered on a throwaway app
/// to collect their annotations.
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        let (_, doc) = actix_web::App::new()
            .into_utoipa_app()
            .openapi(<ApiDoc as utoipa::OpenApi>::openapi())
            .configure(super::api)
            .split_for_parts();
        let mut doc = doc;
        add_shared_responses(&mut doc);
        doc
    })
}

/// The methods `path` is served with, by the document (`GET`, `POST`);
/// none when no route has that path.
pub fn methods_for(path: &str) -> Vec<String> {
    let given: Vec<&str> = path.split('/').collect();
    let matches = |template: &str| {
        let parts: Vec<&str> = template.split('/').collect();
        parts.len() == given.len()
            && parts
                .iter()
                .zip(&given)
                .all(|(part, seg)| part == seg || (part.starts_with('{') && !seg.is_empty()))
    };
    let mut methods: Vec<String> = document()
        .paths
        .paths
        .iter()
        .filter(|(template, _)| matches(template))
        .flat_map(|(_, item)| {
            // The (one or two) paths that match: cloned to share the list
            // of methods with the writer below.
            let mut item = item.clone();
            let served = operations(&mut item).into_iter().filter(|(_, op)| op.is_some());
            served.map(|(method, _)| method.to_owned()).collect::<Vec<_>>()
        })
        .collect();
    methods.sort_unstable();
    methods.dedup();
    methods
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(tag = "node", responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
#[get("/openapi.json")]
async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

/// The document's routes, and Swagger UI at [`DOCS`].
pub(super) fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(openapi_json).map(|cfg| {
        cfg.route(DOCS, actix_web::web::get().to(to_docs)).service(
            utoipa_swagger_ui::SwaggerUi::new(format!("{DOCS}/{{_:.*}}"))
                // No badge from the online validator: the page fetches
                // nothing from elsewhere.
                .config(utoipa_swagger_ui::Config::from(DOCUMENT).validator_url("none")),
        )
    });
}

/// `/docs` → `/docs/`, where the page's relative links work.
async fn to_docs() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header(("Location", format!("{DOCS}/"))).finish()
}

/// What every operation shares, added to each once.
struct Conventions;

/// Responses every operation may answer, where it does not say more.
const SHARED: [(&str, &str); 5] = [
    ("401", "Missing or unknown credentials (`WWW-Authenticate: Bearer`)"),
    ("429", "Over this client's rate: retry after `Retry-After` seconds"),
    ("503", "Draining, restarting or busy: retry after `Retry-After` seconds"),
    ("4XX", "The request was refused; nothing changed"),
    ("5XX", "The node failed to answer"),
];

impl utoipa::Modify for Conventions {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("API key or JWT")
                    .description(Some(
                        "Required on a node with keys (`auth.keys`, `auth.jwt`); an open node needs none",
                    ))
                    .build(),
            ),
        );
        if let Some(RefOr::T(Schema::Object(problem))) = components.schemas.get_mut("Problem") {
            describe_problem_types(problem);
        }
        // Either a bearer credential, or none on an open node.
        doc.security = Some(vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::default(),
        ]);
    }
}

/// Lists every problem `type` on the schema: as an enum, and as a table
/// of status, type and title in its description.
fn describe_problem_types(problem: &mut Object) {
    let types = ApiError::problem_types();
    let mut table = String::from("An RFC 9457 problem.\n\n| status | type | title |\n|---|---|---|\n");
    for (status, slug, title) in &types {
        table.push_str(&format!("| {status} | `/problems/{slug}` | {title} |\n"));
    }
    problem.description = Some(table);
    if let Some(RefOr::T(Schema::Object(kind))) = problem.properties.get_mut("type") {
        let mut slugs: Vec<_> = types.iter().map(|(_, slug, _)| format!("/problems/{slug}")).collect();
        slugs.dedup();
        kind.enum_values = Some(slugs.into_iter().map(Into::into).collect());
        kind.schema_type = Type::String.into();
    }
}

/// Adds the shared responses to every operation of the document; runs
/// after the paths are collected (see [`document`]).
fn add_shared_responses(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            if let Some(operation) = operation {
                add_shared(operation);
            }
        }
    }
}

/// A path's operations by method, the methods the API uses.
fn operations(item: &mut PathItem) -> [(&'static str, &mut Option<Operation>); 5] {
    [
        ("GET", &mut item.get),
        ("POST", &mut item.post),
        ("PUT", &mut item.put),
        ("DELETE", &mut item.delete),
        ("PATCH", &mut item.patch),
    ]
}

fn add_shared(operation: &mut Operation) {
    // Health, metrics and this document are outside authentication and
    // the rate limit.
    let open = operation.tags.as_ref().is_some_and(|tags| tags.iter().any(|t| t == "node"));
    for (status, description) in SHARED {
        if open && matches!(status, "401" | "429") {
            continue;
        }
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| problem(status, description).into());
    }
}

/// A problem response; 429 and 503 say when to retry.
fn problem(status: &str, description: &str) -> Response {
    let mut response = ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        ContentBuilder::new().schema(Some(utoipa::openapi::Ref::from_schema_name("Problem"))).build(),
    );
    if matches!(status, "429" | "503") {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(
                    utoipa::openapi::ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)),
                ))
                .description(Some("Whole seconds to wait before retrying"))
                .build(),
        );
    }
    if status == "401" {
        response = response.header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .schema(Some(utoipa::openapi::ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        );
    }
    response.build()
}
