//! Extractors whose rejections are [`ApiError`]s: a bad path, query or
//! body is answered through the one error table (`super::error`), like any
//! other error, with no hand-unwrapping in the handlers.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::error::{Error, ErrorKind};
use crate::node::Host;

/// Path parameters (`axum::extract::Path`).
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(v) = axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(v))
    }
}

/// The query string (`axum::extract::Query`).
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(v) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(v))
    }
}

/// A JSON request body, whole, within the request size limit.
///
/// A non-empty body must be declared `application/json` (or a `+json`
/// type): a browser page can send `text/plain` or form bodies to any site
/// without asking first, but not JSON, so this shuts that door even when
/// no token is set. An empty body needs no type.
#[derive(Debug)]
pub struct Body(pub Bytes);

/// Whether `content_type` names JSON (`application/json`,
/// `application/<x>+json`, parameters such as `charset` allowed).
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn not_json(found: Option<&str>) -> ApiError {
    let found = found.map_or_else(
        || "none".to_string(),
        |t| format!("`{}`", t.chars().take(100).collect::<String>()),
    );
    ApiError(Error::new(
        ErrorKind::UnsupportedType,
        "unsupported_media_type",
        format!("the body must be JSON with `Content-Type: application/json` (found: {found})"),
    ))
}

impl FromRequest<Host> for Body {
    type Rejection = ApiError;

    /// The whole body, within `[http] body_timeout` (a client trickling
    /// its body holds a request slot no longer than that).
    async fn from_request(req: Request, host: &Host) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("(not text)").to_string());
        if let Some(t) = content_type.as_deref().filter(|t| !is_json(t)) {
            return Err(not_json(Some(t)));
        }
        let timeout = host.settings().http.body_timeout;
        match tokio::time::timeout(timeout, Bytes::from_request(req, host)).await {
            Ok(body) => {
                let body = body?;
                if content_type.is_none() && !body.is_empty() {
                    return Err(not_json(None));
                }
                Ok(Body(body))
            }
            Err(_) => Err(Error::new(
                ErrorKind::Invalid,
                "body_timeout",
                format!("the request body did not arrive within {timeout:?}"),
            )
            .into()),
        }
    }
}

/// The body of a plugin upload, within `[plugins] max_upload_bytes`
/// (smaller than `max_request_bytes`: compiling costs hundreds of times the
/// component's size) and `[http] body_timeout`.
#[derive(Debug)]
pub struct PluginBody(pub Bytes);

impl FromRequest<Host> for PluginBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, host: &Host) -> Result<Self, ApiError> {
        use http_body_util::BodyExt;
        let settings = host.settings();
        let limit = usize::try_from(settings.plugins.max_upload_bytes.as_u64()).unwrap_or(usize::MAX);
        let too_large = || {
            ApiError(Error::new(
                ErrorKind::TooLarge,
                "payload_too_large",
                format!("a plugin upload may be at most plugins.max_upload_bytes ({limit} bytes)"),
            ))
        };
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let timeout = settings.http.body_timeout;
        let limited = http_body_util::Limited::new(req.into_body(), limit);
        match tokio::time::timeout(timeout, limited.collect()).await {
            Ok(Ok(body)) => Ok(PluginBody(body.to_bytes())),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
            Ok(Err(e)) => Err(Error::invalid(format!("cannot read the request body: {e}")).into()),
            Err(_) => Err(Error::new(
                ErrorKind::Invalid,
                "body_timeout",
                format!("the request body did not arrive within {timeout:?}"),
            )
            .into()),
        }
    }
}

/// The body of a produce request, read only once its size fits the node's
/// `max_in_flight_bytes` budget; the budget is held until the handler is
/// done with it (decoded, appended and acknowledged).
#[derive(Debug)]
pub struct BudgetedBody {
    pub body: Bytes,
    _budget: crate::node::InFlight,
}

impl FromRequest<Host> for BudgetedBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, host: &Host) -> Result<Self, ApiError> {
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| host.settings().max_request_bytes.as_u64());
        let budget = host.reserve_in_flight(declared).await?;
        let Body(body) = Body::from_request(req, host).await?;
        Ok(BudgetedBody { body, _budget: budget })
    }
}
