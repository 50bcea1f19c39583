//! The OpenAPI 3.1 document served at `/openapi.json`, generated from the
//! handlers' own annotations so that it cannot drift from the code.

use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use crate::problem::Problem;
use crate::routes::{configs, health, history, roots, verify};
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
        history::history, history::at, history::diff, history::rollback, verify::verify,
        health::healthz, health::readyz, health::metrics,
    ),
    components(schemas(
        Problem, roots::RootPage, roots::RootEntry, roots::Registered, configs::Written,
        history::HistoryPage, history::HistoryEntry, history::Version, history::Diff,
        history::RollbackRequest, verify::VerifyReport, verify::VerifyGap, verify::VerifyBreak,
        health::Readiness, schemas::ProtocolJson, schemas::ConnectionInfo, schemas::PatchOp,
    )),
    modifiers(&Bearer),
    tags(
        (name = "roots", description = "Roots: list and register"),
        (name = "configs", description = "Configurations: read, change, follow"),
        (name = "history", description = "Versions: history, documents at a version, diffs, rollback"),
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

/// The document, as served: utoipa's, with the hand-written schemas of
/// [`schemas`] in place of the placeholders their types register.
pub(crate) fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    if let Some(components) = doc
        .pointer_mut("/components/schemas")
        .and_then(serde_json::Value::as_object_mut)
    {
        for (name, schema) in schemas::all() {
            components.insert(name.to_owned(), schema);
        }
    }
    // Every operation may answer 401: on a server started with a token, to a
    // request without it (written here once rather than on each handler).
    if let Some(paths) = doc
        .pointer_mut("/paths")
        .and_then(serde_json::Value::as_object_mut)
    {
        for operation in paths
            .values_mut()
            .filter_map(serde_json::Value::as_object_mut)
        {
            for op in operation.values_mut() {
                if let Some(responses) = op
                    .get_mut("responses")
                    .and_then(serde_json::Value::as_object_mut)
                {
                    responses.insert(
                        "401".into(),
                        serde_json::json!({
                            "description": "No bearer token, or the wrong one (a server started with a token)",
                            "content": {"application/problem+json": {
                                "schema": {"$ref": "#/components/schemas/Problem"}
                            }}
                        }),
                    );
                }
            }
        }
    }
    // Each event of the stream, as OpenAPI 3.2 says it (`itemSchema`); the
    // 3.1 `schema` stays the stream as a whole, a string.
    if let Some(stream) = doc
        .pointer_mut(
            "/paths/~1v1~1configs~1{root}~1events/get/responses/200/content/text~1event-stream",
        )
        .and_then(serde_json::Value::as_object_mut)
    {
        stream.insert("itemSchema".into(), schemas::sse_event());
    }
    doc
}

/// Schemas written by hand, for what the protocol accepts but no Rust type
/// describes: JSON as the protocol reads it (numbers within ±2^53), the
/// connection info of a root, and one RFC 6902 operation.
pub(crate) mod schemas {
    use serde_json::{Value, json};
    use utoipa::openapi::{ObjectBuilder, RefOr, Schema};
    use utoipa::{PartialSchema, ToSchema};

    /// The largest magnitude of a number the protocol takes (2^53).
    const MAX_SAFE: f64 = 9_007_199_254_740_992.0;

    /// Each type below registers this placeholder under its name;
    /// [`super::document`] puts the real schema in its place.
    fn placeholder() -> RefOr<Schema> {
        RefOr::T(Schema::Object(ObjectBuilder::new().build()))
    }

    /// Any JSON value the protocol takes: numbers within ±2^53 (a document,
    /// a merge patch, an op's `value`).
    pub(crate) struct ProtocolJson;

    /// A root's connection info: Twitch's `{platform, channel}`, or any
    /// other object.
    pub(crate) struct ConnectionInfo;

    /// One RFC 6902 operation.
    pub(crate) struct PatchOp;

    macro_rules! placeholder_schema {
        ($($ty:ident),*) => {$(
            impl PartialSchema for $ty {
                fn schema() -> RefOr<Schema> {
                    placeholder()
                }
            }
            impl ToSchema for $ty {}
        )*};
    }
    placeholder_schema!(ProtocolJson, ConnectionInfo, PatchOp);

    /// One event of `GET /v1/configs/{root}/events`: `snapshot` or `change`,
    /// its id the head hash, its data JSON.
    pub(crate) fn sse_event() -> Value {
        let head = json!({"type": "string", "pattern": "^[0-9a-f]{64}$"});
        json!({
            "type": "object",
            "required": ["event", "id", "data"],
            "properties": {
                "event": {"enum": ["snapshot", "change"]},
                "id": head,
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "description": "`snapshot`: {head, height, document}; `change`: \
                                    {head, height, ops}",
                },
            },
        })
    }

    /// The hand-written schemas, by component name.
    pub(crate) fn all() -> [(&'static str, Value); 3] {
        let json_ref = json!({"$ref": "#/components/schemas/ProtocolJson"});
        // `~` only in the escapes `~0` and `~1` (RFC 6901): any other is a
        // malformed pointer, and the ops are 400.
        let pointer = json!({"type": "string", "pattern": "^(/([^~]|~[01])*)?$",
                             "description": "An RFC 6901 JSON Pointer"});
        [
            (
                "ProtocolJson",
                json!({
                    "description": "Any JSON value whose numbers are within ±2^53 \
                                    (nested at most 128 deep).",
                    "anyOf": [
                        {"type": "null"},
                        {"type": "boolean"},
                        {"type": "string"},
                        {"type": "number", "minimum": -MAX_SAFE, "maximum": MAX_SAFE},
                        {"type": "array", "items": json_ref},
                        {"type": "object", "additionalProperties": json_ref},
                    ],
                }),
            ),
            (
                "ConnectionInfo",
                json!({
                    "description": "Connection info: `{\"platform\":\"twitch\",\"channel\":\"#name\"}` \
                                    (the Twitch rule: case and `#` do not matter), or any other \
                                    object, taken as is. At most 4096 bytes in canonical form.",
                    "type": "object",
                    "additionalProperties": json_ref,
                    "example": {"platform": "twitch", "channel": "#tikatoo"},
                }),
            ),
            (
                "PatchOp",
                json!({
                    "description": "One RFC 6902 operation (other members are ignored, but must be \
                                protocol JSON too).",
                    "oneOf": [
                        {"type": "object", "required": ["op", "path", "value"],
                         "properties": {"op": {"enum": ["add", "replace", "test"]},
                                        "path": pointer, "value": json_ref},
                     "additionalProperties": json_ref},
                        {"type": "object", "required": ["op", "path"],
                         "properties": {"op": {"const": "remove"}, "path": pointer},
                     "additionalProperties": json_ref},
                        {"type": "object", "required": ["op", "from", "path"],
                         "properties": {"op": {"enum": ["move", "copy"]},
                                        "from": pointer, "path": pointer},
                     "additionalProperties": json_ref},
                    ],
                }),
            ),
        ]
    }
}
