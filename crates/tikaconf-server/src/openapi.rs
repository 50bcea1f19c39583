//! The OpenAPI 3.1 document served at `/openapi.json`, generated from the
//! handlers' own annotations so that it cannot drift from the code.

use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use crate::problem::Problem;
use crate::routes::{configs, health, roots};
use crate::sse;

/// The API's description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tikaconf",
        description = "One JSON configuration per root, changed by hash-chained RFC 6902 patches. \
                       ETags are head hashes; every write answers once it is durably stored.",
    ),
    paths(
        roots::list, roots::register,
        configs::get, configs::patch, configs::put,
        sse::events,
        health::healthz, health::readyz, health::metrics,
    ),
    components(schemas(
        Problem, roots::RootPage, roots::RootEntry, roots::Registered, configs::Written,
        health::Readiness,
    )),
    modifiers(&Bearer),
    tags(
        (name = "roots", description = "Roots: list and register"),
        (name = "configs", description = "Configurations: read, change, follow"),
        (name = "health", description = "Probes"),
    )
)]
pub(crate) struct ApiDoc;

/// Declares the bearer token scheme (needed when the server has a token).
struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document, as served.
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
