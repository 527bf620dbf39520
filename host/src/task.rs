//! Running blocking work (file I/O, compiling or calling plugins) off the
//! async workers, with a failed task mapped to an internal error.

use crate::error::{Error, ErrorKind};

/// Runs blocking work (file I/O, compiling or calling plugins) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, "internal", format!("blocking task failed: {e}")))
}
