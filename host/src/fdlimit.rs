//! The process's open-file limit. At start the soft limit is raised to the
//! hard one, and the connection caps (HTTP and Kafka) are lowered, with a
//! warning, so that together they leave [`RESERVE`] descriptors for what
//! must never fail for lack of one: WAL segments, the metadata snapshot,
//! tiered objects, plugins and peer connections.

use crate::config::Settings;

/// Descriptors kept free of client connections.
pub const RESERVE: u64 = 256;

/// Raises the soft open-file limit to the hard limit; returns the limit in
/// force afterwards (the old one if raising failed, which is logged).
pub fn raise() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// Lowers `settings`' HTTP and Kafka connection caps, in proportion, so
/// that both together fit `limit` less [`RESERVE`] (at least one each).
pub fn fit_connection_caps(settings: &mut Settings, limit: u64) {
    let budget = usize::try_from(limit.saturating_sub(RESERVE))
        .unwrap_or(usize::MAX)
        .max(2);
    let http = settings.http.max_connections;
    let kafka = if settings.kafka_listen.is_some() {
        settings.kafka_max_connections
    } else {
        0
    };
    let wanted = http.saturating_add(kafka);
    if wanted <= budget {
        return;
    }
    let share = |n: usize| ((n as u128 * budget as u128 / wanted as u128) as usize).max(1);
    let (new_http, new_kafka) = (share(http), share(kafka));
    // Defaults are fitted quietly; caps someone set are worth a warning.
    let defaults = Settings::default();
    let set_by_hand =
        http != defaults.http.max_connections || settings.kafka_max_connections != defaults.kafka_max_connections;
    let message = "connection caps lowered to fit the open-file limit (raise it with `ulimit -n` to allow more)";
    if set_by_hand {
        tracing::warn!(
            open_file_limit = limit,
            reserve = RESERVE,
            http_max_connections = new_http,
            kafka_max_connections = new_kafka,
            "{message}"
        );
    } else {
        tracing::info!(
            open_file_limit = limit,
            reserve = RESERVE,
            http_max_connections = new_http,
            kafka_max_connections = new_kafka,
            "{message}"
        );
    }
    settings.http.max_connections = new_http;
    if kafka > 0 {
        settings.kafka_max_connections = new_kafka;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_shrink_in_proportion_to_fit_the_limit_with_the_reserve_left() {
        let mut s = Settings::default();
        s.http.max_connections = 3_000;
        s.kafka_max_connections = 1_000;
        fit_connection_caps(&mut s, 1024);
        let (h, k) = (s.http.max_connections, s.kafka_max_connections);
        assert!(h + k <= 1024 - RESERVE as usize, "{h} + {k}");
        assert_eq!((h, k), (576, 192));
        // Enough room: nothing changes.
        let mut s = Settings::default();
        fit_connection_caps(&mut s, 1 << 20);
        assert_eq!(s.http.max_connections, 10_000);
        // A tiny limit still leaves one connection each.
        let mut s = Settings::default();
        fit_connection_caps(&mut s, 10);
        assert_eq!((s.http.max_connections, s.kafka_max_connections), (1, 1));
    }
}
