//! What this node has seen of each peer, from its own calls to them: when
//! one last reached the peer, and when one was last refused a connection.
//! A peer counts as down only on that evidence: its last call was refused
//! (nothing listens on its address) within [`EVIDENCE_FOR`] and none has
//! reached it since. A timeout is no evidence (a slow or partitioned peer
//! may still serve clients), and neither is an old refusal: with no call
//! since, the peer counts as up again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a refused connection counts as evidence. Followers retry an
/// unreachable leader at most 10 s apart, and leaders ask silent
/// followers every second, so a peer that stays down stays counted down.
pub const EVIDENCE_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    reached: Option<Instant>,
    refused: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct Liveness {
    seen: Mutex<HashMap<u32, Seen>>,
}

impl Liveness {
    /// A call reached `node` (any answer, an error status included).
    pub fn reached(&self, node: u32) {
        self.with(node, |s| s.reached = Some(Instant::now()));
    }

    /// A call to `node` was refused a connection.
    pub fn refused(&self, node: u32) {
        self.with(node, |s| s.refused = Some(Instant::now()));
    }

    /// Whether `node` is down, as of `now`.
    pub fn down_at(&self, node: u32, now: Instant) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = seen.get(&node) else {
            return false;
        };
        match s.refused {
            Some(r) => now.saturating_duration_since(r) <= EVIDENCE_FOR && s.reached.is_none_or(|ok| ok < r),
            None => false,
        }
    }

    pub fn down(&self, node: u32) -> bool {
        self.down_at(node, Instant::now())
    }

    fn with(&self, node: u32, f: impl FnOnce(&mut Seen)) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        f(seen.entry(node).or_default());
    }
}

/// Whether a request failed because the peer refused the connection.
pub fn is_refused(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        source = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_counts_until_a_call_reaches_the_peer_or_it_is_old() {
        let l = Liveness::default();
        assert!(!l.down(2), "nothing seen: up");
        l.reached(2);
        assert!(!l.down(2));
        l.refused(2);
        assert!(l.down(2), "refused after it was reached");
        assert!(!l.down(3), "another peer");
        let later = Instant::now() + EVIDENCE_FOR + Duration::from_secs(1);
        assert!(!l.down_at(2, later), "the evidence is old");
        l.reached(2);
        assert!(!l.down(2), "reached again");
    }

    #[tokio::test]
    async fn a_closed_port_is_a_refusal_and_a_timeout_is_not() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let client = reqwest::Client::new();
        let err = client
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert!(is_refused(&err), "{err:?}");
        // Listening but silent: a timeout.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", silent.local_addr().unwrap());
        let err = client
            .get(url)
            .timeout(Duration::from_millis(200))
            .send()
            .await
            .unwrap_err();
        assert!(!is_refused(&err), "{err:?}");
    }
}
