//! The OpenAPI 3.1 document of the HTTP API, served at `GET /openapi.json`.
//!
//! Generated from the code: each handler's `#[utoipa::path]` annotation
//! gives its operation, the wire types' `ToSchema` derives give the schemas,
//! and [`super::api`] registers routes and operations in one place (so a
//! route cannot be served without being documented). This module adds the
//! document-wide parts (info, tags, the bearer scheme, the 415 answer of
//! every JSON body) and the few
//! documentation-only types for shapes the code does not name.

use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::error::{ApiError, ErrorBody};
use super::wire::{Encoding, RecordIn};
use crate::error::{Error, ErrorKind};

/// Name of the bearer-token security scheme in the document.
pub const BEARER: &str = "bearer";

/// Document-wide parts; the operations come from [`super::api`].
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Sluice",
        version = env!("CARGO_PKG_VERSION"),
        description = "HTTP API of a Sluice node. Every error answer is `{\"error\": {\"code\", \"message\"}}` with a \
                       stable `code`; its status follows from the code's kind alone."
    ),
    modifiers(&BearerScheme),
    // A node started without `auth_token` needs no token (the empty
    // requirement); one started with it needs the bearer token everywhere
    // but the operations that override this.
    security((), ("bearer" = [])),
    // Schemas reached only from parameters: `routes!` collects those of
    // bodies only.
    components(schemas(ErrorBody, Encoding, crate::node::Acks)),
    tags(
        (name = "system", description = "Health, metrics and this document"),
        (name = "streams", description = "Streams: create, list, describe, status, delete"),
        (name = "records", description = "Produce and consume records"),
        (name = "compaction", description = "Key-based compaction of tiered data"),
        (name = "plugins", description = "WebAssembly plugins: upload, list, describe, delete"),
        (name = "pipelines", description = "Pipelines: input stream -> transform plugin -> output stream"),
        (name = "views", description = "Views: read-only topics over a stream through a transform plugin"),
        (name = "groups", description = "Consumer groups: members, committed offsets, lag, reset, delete"),
        (name = "cluster", description = "Replication between nodes (internal routes) and leadership"),
    )
)]
pub struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "`Authorization: Bearer <token>`; required only when the node is configured with `auth_token`",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// The document, built once.
pub fn document() -> &'static Result<String, String> {
    static DOC: OnceLock<Result<String, String>> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = super::api().into_openapi();
        document_shared_answers(&mut doc);
        doc.to_json().map_err(|e| e.to_string())
    })
}

/// Adds the answers that whole groups of routes share, from the layer
/// that gives them: 415 to every operation taking a JSON body (the body
/// extractor refuses any other `Content-Type`), 400 to every operation with
/// path or query parameters (their extractors refuse malformed ones, and
/// names are checked), and 404 `not_in_cluster` to every internal route (a
/// node without `[cluster]` has none).
fn document_shared_answers(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::{ContentBuilder, Ref, Response, ResponseBuilder};
    let error = |description: &str| -> Response {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    let refused = error("`unsupported_media_type`: the body is not declared `application/json`");
    let not_in_cluster = error("`not_in_cluster`: this node has no `[cluster]` section, so no internal routes");
    let bad_parameter = error("`invalid_request`: a path or query parameter is malformed or not allowed");
    for (path, item) in doc.paths.paths.iter_mut() {
        let internal = path.starts_with("/internal/");
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            let json = op
                .request_body
                .as_ref()
                .is_some_and(|b| b.content.contains_key("application/json"));
            if json {
                op.responses.responses.insert("415".into(), refused.clone().into());
            }
            let parameters = op.parameters.as_ref().is_some_and(|p| {
                p.iter()
                    .any(|p| matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query))
            });
            if parameters {
                op.responses
                    .responses
                    .entry("400".into())
                    .or_insert_with(|| bad_parameter.clone().into());
            }
            if internal {
                op.responses
                    .responses
                    .entry("404".into())
                    .or_insert_with(|| not_in_cluster.clone().into());
            }
        }
    }
}

/// This document
///
/// OpenAPI 3.1, generated from the code. Answers without a token even when
/// one is configured: it describes the API and holds no data.
#[utoipa::path(get, path = "/openapi.json", tag = "system", security(()),
    responses(
        (status = 200, description = "The OpenAPI document", body = Object, content_type = "application/json"),
        (status = 500, description = "`internal`: the document could not be serialized", body = ErrorBody),
    ))]
pub async fn openapi_json() -> Result<([(axum::http::HeaderName, &'static str); 1], &'static str), ApiError> {
    match document() {
        Ok(json) => Ok(([(CONTENT_TYPE, "application/json")], json.as_str())),
        Err(e) => Err(ApiError(Error::new(
            ErrorKind::Internal,
            "internal",
            format!("OpenAPI document: {e}"),
        ))),
    }
}

// Documentation-only types: shapes that the code handles without a named
// type (the two produce body forms) or whose type lives where the API layer
// does not derive `ToSchema` (the plugin registry's). `tests_openapi` checks
// the mirrors against what the real types serialize to.

/// Produce body: a bare array of records or `{"records": [...]}`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ProduceBody {
    Array(Vec<RecordIn>),
    Wrapped { records: Vec<RecordIn> },
}

/// Mirror of `plugin::PluginKind`: which world a plugin implements.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = PluginKind)]
#[allow(dead_code)]
pub enum PluginKindDoc {
    Transform,
    Compaction,
}

/// Mirror of `plugin::VersionInfo`: one stored plugin version.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = VersionInfo)]
#[allow(dead_code)]
pub struct VersionInfoDoc {
    pub version: u32,
    pub kind: PluginKindDoc,
    /// Size of the `.wasm` in bytes.
    pub size: u64,
    pub uploaded_ms: u64,
}

/// Mirror of `plugin::PluginInfo`: a plugin and its versions, ascending.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = PluginInfo)]
#[allow(dead_code)]
pub struct PluginInfoDoc {
    pub name: String,
    pub versions: Vec<VersionInfoDoc>,
}

/// A plugin upload's body: the `.wasm` component's raw bytes. Named so the
/// document gives both media types a binary schema (without one, generators
/// try JSON values that cannot be sent as `application/wasm`).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct WasmBody(Vec<u8>);
