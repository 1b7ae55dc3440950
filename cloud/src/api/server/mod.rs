//! The API's HTTP server: the accept loop, the bound on open connections, the timeouts, and
//! hyper's own error answers in the error shape.
//!
//! `axum::serve` has no header timeout and no connection bound, so a client that sends
//! half a request head holds its connection, and a file descriptor, for ever. Here each
//! connection is served by hyper's HTTP/1 connection builder with:
//! - a **header timeout** ([`Limits::header_timeout`], `[http] header_timeout`): a request
//!   head must arrive whole within it, counted from the connection's start and, on a
//!   kept-alive connection, from the end of the previous answer, so it also bounds how long
//!   an idle connection stays open. Past it hyper closes the connection.
//! - a **body deadline** ([`guard::Guard::body_timeout`], `[http] body_timeout`): the whole
//!   body, not each chunk of it, within that time, else 408 `request_timeout`.
//! - **head limits**: [`MAX_HEAD_BYTES`], [`MAX_HEADERS`] (431) and [`MAX_URI_BYTES`]
//!   (414), answered in the error shape by [`rewrite::ErrorRewrite`].
//! - a **write stall bound** ([`stall::WRITE_STALL_TIMEOUT`]): an answer the client reads
//!   nothing of for that long ends its connection.
//! - a **connection bound** ([`Limits::max_connections`], `[http] max_connections`): the
//!   accept loop takes a permit before it accepts, so beyond the bound new connections wait
//!   in the listen backlog until one closes (each waits at most a header timeout unless it
//!   is answering a request or a stream).
//!
//! - **TLS**, when [`serve`] is given an acceptor ([`tls`]: which addresses need it, and the
//!   certificates): the handshake runs in the connection's own task, holding its permit,
//!   and must end within the header timeout, else the connection is closed; then the head
//!   has its own header timeout. A plain-http request to a TLS port fails its handshake.
//!
//! The bounds and their defaults are in [`limits`]; the request guard in [`guard`]; hyper's
//! own error answers in [`rewrite`]; the write stall bound in [`stall`]; the TLS policy and
//! acceptor in [`tls`]. This file uses them; none of them uses this file.
//!
//! Shutdown is graceful: the listener closes, idle connections are closed, handshakes still
//! under way are dropped, and requests in flight finish (streams end on the shutdown signal
//! themselves).

pub mod guard;
pub mod limits;
pub mod rewrite;
pub mod stall;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

pub use guard::Guard;
pub use limits::{
    CLIENT_POOL_IDLE, DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    Limits, MAX_HEAD_BYTES, MAX_HEADERS, MAX_URI_BYTES,
};

/// How long the accept loop pauses after an accept error other than a refused or reset
/// connection (out of file descriptors, say), so that it does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// How long a shutdown waits for open connections to finish their answers (a follow ends
/// at once; a client that reads slowly may not): past it, they are dropped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Serves `router` on `listener` until `shutdown` resolves, then waits for the connections
/// to end. With `tls`, each connection is a TLS session first.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // Handshakes under way end when this turns true.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "cannot accept an API connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            http: http.clone(),
            router: router.clone(),
            peer,
            watcher: graceful.watcher(),
            permit,
        };
        match &tls {
            None => {
                tokio::spawn(conn.serve(stream));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let timeout = limits.header_timeout;
                let mut stop = stop_rx.clone();
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(timeout, acceptor.accept(stream));
                    let stream = tokio::select! {
                        done = handshake => match done {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "API TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, ?timeout, "API TLS handshake did not end within the header timeout");
                                return;
                            }
                        },
                        _ = stop.wait_for(|s| *s) => return,
                    };
                    conn.serve(stream).await;
                });
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace = ?SHUTDOWN_GRACE,
            "API connections still open at shutdown were dropped"
        );
    }
    Ok(())
}

/// One accepted connection, to be served over a plain or a TLS stream.
struct Conn {
    http: hyper::server::conn::http1::Builder,
    router: Router,
    peer: SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
    /// Released when the connection ends.
    permit: OwnedSemaphorePermit,
}

impl Conn {
    async fn serve<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            http,
            router,
            peer,
            watcher,
            permit,
        } = self;
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            let router = router.clone();
            async move {
                Ok::<_, Infallible>(
                    router
                        .oneshot(req.map(axum::body::Body::new))
                        .await
                        .unwrap_or_else(|e| match e {}),
                )
            }
        });
        let io = TokioIo::new(rewrite::ErrorRewrite::new(stall::WriteStall::new(stream)));
        if let Err(e) = watcher.watch(http.serve_connection(io, service)).await {
            tracing::debug!(%peer, error = %e, "API connection ended with an error");
        }
        drop(permit);
    }
}
