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

/// The whole body, within the request size limit.
#[derive(Debug)]
pub struct Body(pub Bytes);

impl FromRequest<Host> for Body {
    type Rejection = ApiError;

    /// The whole body, within `[http] body_timeout` (a client trickling
    /// its body holds a request slot no longer than that).
    async fn from_request(req: Request, host: &Host) -> Result<Self, ApiError> {
        let timeout = host.settings().http.body_timeout;
        match tokio::time::timeout(timeout, Bytes::from_request(req, host)).await {
            Ok(body) => Ok(Body(body?)),
            Err(_) => Err(Error::new(
                ErrorKind::Invalid,
                "body_timeout",
                format!("the request body did not arrive within {timeout:?}"),
            )
            .into()),
        }
    }
}
