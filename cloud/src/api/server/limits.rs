//! The API server's bounds and their defaults: the header and body timeouts, the bound on
//! open connections, the head and URI limits, and how long the CLI keeps a pooled
//! connection.

use std::time::Duration;

/// How long a request head may take to arrive (and a kept-alive connection may stay idle),
/// unless `[http] header_timeout` says otherwise.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client of the cloud (the CLI, the tests' clients) keeps an idle pooled
/// connection: well under [`DEFAULT_HEADER_TIMEOUT`], which also closes an idle kept-alive
/// connection, so that a client never reuses a connection just as the cloud closes it.
pub const CLIENT_POOL_IDLE: Duration = Duration::from_secs(4);

/// How long a request body may take to arrive whole, unless `[http] body_timeout` says
/// otherwise.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// How many connections the API serves at once, unless `[http] max_connections` says
/// otherwise (and at most half the process's open-files limit).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// The largest request head (request line and headers) hyper reads, in bytes: beyond it,
/// 431 `headers_too_large`.
pub const MAX_HEAD_BYTES: usize = 128 * 1024;

/// The most headers a request may have: beyond it, 431 `headers_too_large`.
pub const MAX_HEADERS: usize = 100;

/// The longest request URI, in bytes (the `http` crate's own limit): beyond it, 414
/// `uri_too_long`.
pub const MAX_URI_BYTES: usize = u16::MAX as usize - 1;

/// The server's bounds.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}
