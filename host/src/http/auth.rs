//! Optional bearer-token guard for everything but `/health`, `/ready` and
//! `/openapi.json` (the API's description, which holds no data), and the
//! guard of the internal routes (`/internal/...`): only on a cluster node,
//! only for another node proving its id with the cluster's secret (a client
//! token is not enough), which handlers find as [`PeerNode`].

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::error::{Error, ErrorKind};
use crate::node::Host;

/// Paths served without a token.
const OPEN_PATHS: &[&str] = &["/health", "/ready", "/openapi.json"];

/// The node an internal call proved it is (see `require_token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerNode(pub u32);

pub async fn require_token(State(host): State<Host>, mut req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/internal/") {
        // Nodes only: a peer's proof of its id, never a client token.
        if !host.in_cluster() {
            // Every internal route is a POST; other methods get the router's
            // 405 as anywhere else.
            if req.method() != axum::http::Method::POST {
                return next.run(req).await;
            }
            return ApiError(Error::new(
                ErrorKind::NotFound,
                "not_in_cluster",
                "this node is not in a cluster: it has no internal routes",
            ))
            .into_response();
        }
        let proved = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| host.verify_peer(v));
        return match proved {
            Some(node) => {
                req.extensions_mut().insert(PeerNode(node));
                next.run(req).await
            }
            None => unauthorized("internal routes take a cluster node's proof (`Authorization: SluicePeer ...`)"),
        };
    }
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
