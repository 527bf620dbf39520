//! A TCP proxy in front of a real server, for faults a real client cannot
//! be made to hit on cue: it forwards both ways, can hold back the server's
//! answers while the client's requests still arrive (so the server has
//! stored what the client was never told about), and can cut every
//! connection at once. New connections go to the target set last.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

#[derive(Default)]
struct Shared {
    hold: AtomicBool,
    target: Mutex<Option<String>>,
    conns: Mutex<Vec<AbortHandle>>,
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
                let conn = tokio::spawn(forward(client, target, s.clone()));
                s.conns.lock().unwrap().push(conn.abort_handle());
            }
        })
        .abort_handle();
        FaultProxy { addr, shared, accept }
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

    /// Closes every connection (answers held are dropped) and lets answers
    /// through again on new ones.
    pub fn cut_and_release(&self) {
        for c in self.shared.conns.lock().unwrap().drain(..) {
            c.abort();
        }
        self.shared.hold.store(false, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for c in self.shared.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

async fn forward(client: TcpStream, target: String, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(&target).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async move {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let Ok(n) = sr.read(&mut buf).await else { return };
            if n == 0 {
                return;
            }
            // Checked after the read: what arrives once held stays here.
            while shared.hold.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Either side closing ends the connection (both halves drop).
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}
