//! The `[http]` section: how many connections and requests the HTTP
//! listener takes, and how long an idle or slow connection may stay.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// A connection must send a request's headers within this long, counted
    /// from when it opens or finished its previous answer: an idle
    /// keep-alive connection, or one sending its headers slowly, is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A request body must arrive within this long.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Open connections; more wait in the accept queue. Lowered at start
    /// to fit the process's open-file limit (see docs/SECURITY.md).
    pub max_connections: usize,
    /// Requests served at once; more wait. `/health` and `/ready` are
    /// never held back.
    pub max_concurrent_requests: usize,
    /// Records one produce request may carry.
    pub max_records_per_request: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_concurrent_requests: 1_024,
            max_records_per_request: 100_000,
        }
    }
}

impl HttpSettings {
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.idle_timeout < Duration::from_millis(100) || self.body_timeout < Duration::from_millis(100) {
            return Err("http.idle_timeout and http.body_timeout must be at least 100ms".into());
        }
        if self.max_connections == 0 || self.max_concurrent_requests == 0 || self.max_records_per_request == 0 {
            return Err(
                "http.max_connections, http.max_concurrent_requests and http.max_records_per_request must be positive"
                    .into(),
            );
        }
        Ok(())
    }
}
