//! The OpenAPI 3.1 document, served at /openapi.json and committed as docs/openapi.json
//! (a test fails when the two drift; regenerate with `spine openapi > docs/openapi.json`).

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "Spine API", description = "The integration spine of QiOS. Errors use one body shape: {code, message, details}; codes are listed in docs/errors.md."),
    paths(
        routes::health::healthz, routes::health::readyz, routes::metrics::metrics,
        routes::tenants::create, routes::tenants::list, routes::tenants::update, routes::tenants::create_key, routes::tenants::current,
        routes::users::login, routes::users::create, routes::users::list,
        routes::keys::create, routes::keys::list, routes::keys::revoke,
        routes::whoami::whoami,
        routes::jobs::list, routes::jobs::stats, routes::jobs::show, routes::jobs::act_one, routes::jobs::act_many,
        routes::schedules::list, routes::schedules::create, routes::schedules::show, routes::schedules::act,
        routes::schedules::delete,
        routes::registry::schemas, routes::registry::tables, routes::registry::fields,
        routes::files::upload, routes::files::show, routes::files::batch,
        routes::review::list, routes::review::show, routes::review::decide, routes::review::edit,
        routes::review::bulk_approve, routes::review::promote, routes::provenance::show,
        routes::connector_types::list, routes::connector_types::show,
        routes::connections::list, routes::connections::create, routes::connections::show, routes::connections::update,
        routes::connections::disable, routes::connections::enable, routes::connections::delete,
        routes::connections::checks::test, routes::connections::checks::health, routes::connections::checks::history,
        routes::connections::events::events, routes::connections::events::rate_limit,
        routes::connections::oauth::start, routes::connections::oauth::callback,
    ),
    modifiers(&Bearer),
    tags((name = "health"), (name = "auth"), (name = "tenants"), (name = "users"), (name = "keys"), (name = "registry"), (name = "jobs"), (name = "files"), (name = "review"), (name = "provenance"), (name = "connections"))
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (sak_…), a service key (ssk_…) or a session token from /v1/auth/login.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as pretty JSON with a trailing newline (the committed form).
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut s = doc.to_pretty_json().expect("the OpenAPI document serialises");
    s.push('\n');
    s
}

pub async fn serve() -> Json<serde_json::Value> {
    Json(serde_json::from_str(&document()).expect("valid JSON"))
}
