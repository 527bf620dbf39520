//! The one place where errors become HTTP responses: [`ErrorKind`] decides
//! the status, and the body is always `{"error": {"code", "message"}}`.

use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::{Error, ErrorKind};

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code such as `stream_not_found`.
    #[schema(example = "stream_not_found")]
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

/// Wrapper so handlers can return `Result<_, ApiError>` and use `?`.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl<E: Into<Error>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::NotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::UnsupportedType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::PluginFailed => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Misdirected => StatusCode::MISDIRECTED_REQUEST,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
        ErrorKind::Data | ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = status_of(e.kind());
        if status.is_server_error() {
            tracing::error!(code = e.code(), error = %e, "request failed");
        }
        // Server-side failures (I/O above all) name files: the node's log
        // has the full message, the answer names no server paths. Client
        // errors keep theirs (they cite routes such as `/views`).
        let message = match status.is_server_error() {
            true => without_paths(e.message()),
            false => e.message().to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: e.code(),
                message,
            },
        };
        (status, Json(body)).into_response()
    }
}

/// `message` with every absolute filesystem path (a word starting with
/// `/`, possibly in backticks or quotes) replaced by `<path>`.
fn without_paths(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find('/') {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let word_start = out
            .chars()
            .next_back()
            .is_none_or(|c| matches!(c, ' ' | '`' | '"' | '\'' | '(' | '='));
        if word_start {
            let end = from
                .find(|c: char| c.is_whitespace() || matches!(c, '`' | '"' | '\'' | ')' | ','))
                .unwrap_or(from.len());
            let (path, after) = from.split_at(end);
            // A path ends where a colon follows it ("...: No such file").
            let (path, colon) = match path.strip_suffix(':') {
                Some(p) => (p, ":"),
                None => (path, ""),
            };
            out.push_str(if path.len() > 1 { "<path>" } else { path });
            out.push_str(colon);
            rest = after;
        } else {
            out.push('/');
            rest = &from[1..];
        }
    }
    out.push_str(rest);
    out
}

fn rejection(status: StatusCode, text: String) -> Error {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        Error::new(
            ErrorKind::TooLarge,
            "payload_too_large",
            "request body exceeds max_request_bytes",
        )
    } else {
        Error::invalid(text)
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        ApiError(rejection(r.status(), r.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError(rejection(r.status(), r.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError(rejection(r.status(), r.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::{status_of, without_paths};
    use crate::error::Error;
    use crate::log::LogError;
    use crate::wal::WalError;

    #[test]
    fn a_full_disk_is_507_disk_full_wherever_the_write_was() {
        let full = || std::io::Error::from(std::io::ErrorKind::StorageFull);
        let quota = std::io::Error::from(std::io::ErrorKind::QuotaExceeded);
        let errors: [Error; 4] = [
            WalError::io("write segment", "/d/wal/1.wal", full()).into(),
            LogError::Wal(WalError::io("write segment", "/d/wal/1.wal", quota)).into(),
            LogError::MetaIo {
                path: "/d/meta/streams.json".into(),
                source: full(),
            }
            .into(),
            LogError::Wal(WalError::io("fdatasync segment", "/d/wal/1.wal", full())).into(),
        ];
        for e in errors {
            assert_eq!((e.code(), status_of(e.kind()).as_u16()), ("disk_full", 507), "{e}");
        }
        // Other I/O errors stay 500 `io_error`; a WAL failed earlier is 503.
        let other: Error = WalError::io("write segment", "/d/wal/1.wal", std::io::Error::other("EIO")).into();
        assert_eq!((other.code(), status_of(other.kind()).as_u16()), ("io_error", 500));
        let failed: Error = LogError::Wal(WalError::Poisoned("disk full".into())).into();
        assert_eq!(
            (failed.code(), status_of(failed.kind()).as_u16()),
            ("storage_failed", 503)
        );
    }

    #[test]
    fn answers_name_no_server_paths() {
        assert_eq!(
            without_paths("cannot read `/srv/sluice/data/meta/streams.json`: Permission denied"),
            "cannot read `<path>`: Permission denied"
        );
        assert_eq!(
            without_paths("fdatasync segment /var/lib/sluice/wal/00000000000000000001.wal: Input/output error"),
            "fdatasync segment <path>: Input/output error"
        );
        // URLs, routes and ratios stay as they are.
        assert_eq!(
            without_paths("node 2 (http://10.0.0.2:8080/internal/x) said 1/2"),
            "node 2 (http://10.0.0.2:8080/internal/x) said 1/2"
        );
    }
}
