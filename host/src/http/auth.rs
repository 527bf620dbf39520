//! Optional bearer-token guard for everything but `/health`, `/ready` and
//! `/openapi.json` (the API's description, which holds no data).

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::error::{Error, ErrorKind};
use crate::node::Host;

/// Paths served without a token.
const OPEN_PATHS: &[&str] = &["/health", "/ready", "/openapi.json"];

pub async fn require_token(State(host): State<Host>, req: Request, next: Next) -> Response {
    if host.settings().auth_token.is_none() || OPEN_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(p) if host.token_matches(p.as_bytes()) => next.run(req).await,
        Some(_) => unauthorized("wrong bearer token"),
        None => unauthorized("missing `Authorization: Bearer <token>` header"),
    }
}

fn unauthorized(msg: &str) -> Response {
    ApiError(Error::new(ErrorKind::Unauthorized, "unauthorized", msg)).into_response()
}
