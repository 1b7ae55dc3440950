//! [`Proxy`]: a TCP proxy that can cut a link. It forwards every connection to a target
//! (the cloud's MQTT port) byte for byte, TLS included, on its own tokio runtime. While cut,
//! every connection it carries is dropped and new ones are closed as soon as they are
//! accepted, so the agent sees the link go down while the cloud stays up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

use crate::error::Error;

#[derive(Debug, Default)]
struct Shared {
    cut: AtomicBool,
    accepted: AtomicU64,
    refused: AtomicU64,
    /// The connections carried now; aborted (and so closed) by a cut.
    links: Mutex<JoinSet<()>>,
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `target`.
    pub fn start(target: SocketAddr) -> Result<Proxy, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| Error::io("start the proxy's runtime", e))?;
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| Error::io("bind the proxy", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("the proxy's address", e))?;
        let shared = Arc::new(Shared::default());
        runtime.spawn(accept(listener, target, Arc::clone(&shared)));
        Ok(Proxy {
            addr,
            shared,
            runtime: Some(runtime),
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts the link: drops every connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        if let Some(rt) = &self.runtime {
            rt.block_on(async { self.shared.links.lock().await.abort_all() });
        }
    }

    /// Carries new connections again.
    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    /// Connections carried so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Connections closed at once because the link was cut.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn accept(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if shared.cut.load(Ordering::SeqCst) {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            drop(client);
            continue;
        }
        let mut links = shared.links.lock().await;
        // Checked again under the lock a cut takes: no link slips past a cut.
        if shared.cut.load(Ordering::SeqCst) {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        // Reap the finished ones, so the set holds only live links.
        while links.try_join_next().is_some() {}
        links.spawn(carry(client, target));
    }
}

async fn carry(mut client: TcpStream, target: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
