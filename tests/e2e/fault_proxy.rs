//! A TCP proxy in front of a real server, for faults a real client cannot
//! be made to hit on cue: it forwards both ways, can hold back the server's
//! answers while the client's requests still arrive (so the server has
//! stored what the client was never told about), can cut every connection
//! at once, and can partition the link (nothing passes either way, and no
//! connection is closed) and heal it for new connections only, leaving the
//! old ones silently dead as a real partition leaves TCP connections. New
//! connections go to the target set last.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

#[derive(Default)]
struct Shared {
    /// No answer passes.
    hold: AtomicBool,
    /// Nothing passes either way.
    partition: AtomicBool,
    /// Reads of answers waiting here now.
    held_answers: AtomicUsize,
    target: Mutex<Option<String>>,
    /// Each connection's task and its own "nothing passes, ever again".
    conns: Mutex<Vec<(AbortHandle, Arc<AtomicBool>)>>,
}

pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: AbortHandle,
}

impl FaultProxy {
    /// Listens on a free local port; connections are refused (closed) until
    /// [`FaultProxy::set_target`].
    pub async fn bind() -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let target = s.target.lock().unwrap().clone();
                let Some(target) = target else { continue };
                let dead = Arc::new(AtomicBool::new(false));
                let conn = tokio::spawn(forward(client, target, s.clone(), dead.clone()));
                s.conns.lock().unwrap().push((conn.abort_handle(), dead));
            }
        })
        .abort_handle();
        FaultProxy { addr, shared, accept }
    }

    /// A proxy in front of `s3`, and the environment that points a node's
    /// object store at the proxy instead.
    pub async fn in_front_of_s3(s3: &sluice_test_artifacts::moto::S3Server) -> (FaultProxy, Vec<(String, String)>) {
        let proxy = FaultProxy::bind().await;
        let mut envs = s3.env_vars();
        for (k, v) in &mut envs {
            if k == "AWS_ENDPOINT" {
                proxy.set_target(v.trim_start_matches("http://").to_string());
                *v = format!("http://{}", proxy.addr());
            }
        }
        (proxy, envs)
    }

    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub fn set_target(&self, target: String) {
        *self.shared.target.lock().unwrap() = Some(target);
    }

    /// From now on no byte of the server's answers reaches a client.
    pub fn hold(&self) {
        self.shared.hold.store(true, Ordering::SeqCst);
    }

    /// Whether some answer is being held back now.
    pub fn holds_answers(&self) -> bool {
        self.shared.held_answers.load(Ordering::SeqCst) > 0
    }

    /// Closes every connection (answers held are dropped) and lets answers
    /// through again on new ones.
    pub fn cut_and_release(&self) {
        for (c, _) in self.shared.conns.lock().unwrap().drain(..) {
            c.abort();
        }
        self.shared.hold.store(false, Ordering::SeqCst);
    }

    /// From now on no byte passes either way, on any connection, old or
    /// new; none is closed.
    pub fn partition(&self) {
        self.shared.partition.store(true, Ordering::SeqCst);
    }

    /// Ends the partition: what waited passes, on the old connections too
    /// (a partition shorter than TCP's retransmission timeout).
    pub fn heal(&self) {
        self.shared.partition.store(false, Ordering::SeqCst);
    }

    /// Ends the partition for new connections; every connection open now
    /// stays silent and open for good.
    pub fn heal_new_connections_only(&self) {
        for (_, dead) in self.shared.conns.lock().unwrap().iter() {
            dead.store(true, Ordering::SeqCst);
        }
        self.shared.partition.store(false, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for (c, _) in self.shared.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

async fn forward(client: TcpStream, target: String, shared: Arc<Shared>, dead: Arc<AtomicBool>) {
    let Ok(server) = TcpStream::connect(&target).await else {
        return;
    };
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let (s_up, d_up) = (shared.clone(), dead.clone());
    let up = pump(cr, sw, None, move || {
        s_up.partition.load(Ordering::SeqCst) || d_up.load(Ordering::SeqCst)
    });
    let s_down = shared.clone();
    let down = pump(sr, cw, Some(shared), move || {
        s_down.hold.load(Ordering::SeqCst) || s_down.partition.load(Ordering::SeqCst) || dead.load(Ordering::SeqCst)
    });
    // Either side closing ends the connection (both halves drop).
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

/// Copies `from` to `to`; whatever was read while `blocked()` waits here
/// until it is not (counted in `answers`' held answers meanwhile).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    answers: Option<Arc<Shared>>,
    blocked: impl Fn() -> bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await.unwrap_or(0);
        // Checked after the read: what arrives once blocked stays here,
        // and so does a close.
        if blocked() {
            let _counted = answers.as_ref().filter(|_| n > 0).map(|s| Held::count(&s.held_answers));
            while blocked() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        if n == 0 {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// One held read, counted while it lives (also when its task is aborted).
struct Held<'a>(&'a AtomicUsize);

impl<'a> Held<'a> {
    fn count(n: &'a AtomicUsize) -> Held<'a> {
        n.fetch_add(1, Ordering::SeqCst);
        Held(n)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
