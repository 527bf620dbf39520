//! Optional bearer-token guard for everything but `/health`, `/ready` and
//! `/openapi.json` (the API's description, which holds no data), passed
//! also by a client certificate verified in the TLS handshake (never for
//! the internal routes), and the
//! guard of the internal routes (`/internal/...`): only on a cluster node,
//! only for another node proving its id with the cluster's secret (a client
//! token is not enough) and, where nodes show certificates (`[tls]
//! client_ca`), over a connection whose certificate names that node's
//! address; handlers find it as [`PeerNode`].

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::serve::ClientCertified;
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
        let authorization = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        let certificate = req.extensions().get::<ClientCertified>().map(|c| &*c.0);
        return match host.verify_peer(authorization, certificate) {
            Ok(node) => {
                req.extensions_mut().insert(PeerNode(node));
                next.run(req).await
            }
            Err(why) => unauthorized(why),
        };
    }
    if host.settings().auth_token.is_none()
        || OPEN_PATHS.contains(&req.uri().path())
        || req.extensions().get::<ClientCertified>().is_some()
    {
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

/// Refuses what a browser sends on another site's behalf: a request whose
/// `Origin` is not the host it is sent to (cross-site request forgery),
/// and, on a node listening on loopback without a token, a request whose
/// `Host` is not a loopback name (a DNS-rebinding page reaching the local
/// node). Clients that are not browsers send no `Origin`, and reach the
/// node by the address it listens on.
pub async fn same_site(State(host): State<Host>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host_header = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    if let Some(origin) = headers.get(axum::http::header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null").to_ascii_lowercase();
        let authority = origin.split_once("://").map(|(_, a)| a.trim_end_matches('/'));
        if authority.is_none() || authority != host_header.as_deref() {
            return forbidden("cross_origin", &format!("cross-origin request from `{origin}` refused"));
        }
    }
    let settings = host.settings();
    if settings.auth_token.is_none()
        && settings.listen.ip().is_loopback()
        && let Some(h) = &host_header
        && !is_loopback_host(h)
    {
        return forbidden(
            "host_not_allowed",
            &format!("`Host: {h}` is not a loopback name; this node listens on loopback without a token"),
        );
    }
    next.run(req).await
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_host(h: &str) -> bool {
    let name = match h.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => h.rsplit_once(':').map_or(h, |(n, _)| n),
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn forbidden(code: &'static str, msg: &str) -> Response {
    ApiError(Error::new(ErrorKind::Forbidden, code, msg)).into_response()
}

fn unauthorized(msg: &str) -> Response {
    ApiError(Error::new(ErrorKind::Unauthorized, "unauthorized", msg)).into_response()
}
