//! The harness's error type: what went wrong while building, starting or talking to a real
//! process, with enough context (commands, logs, answers) to act on from a test failure.

use std::fmt;

/// Why a harness step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `cargo build` of a workspace binary failed.
    #[error("`{command}` failed ({status}):\n{stderr}")]
    Build {
        command: String,
        status: String,
        stderr: String,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The server did not answer `GET /healthz` with 200 in time, or exited first.
    #[error("skerry serve did not become ready: {reason}\n{logs}")]
    NotReady { reason: String, logs: String },
    /// An HTTP request could not be made or its answer not read.
    #[error("{method} {url}: {reason}")]
    Http {
        method: String,
        url: String,
        reason: String,
    },
    /// An answer that is not what the contract promises (a status, a body, a check).
    #[error("{0}")]
    Unexpected(String),
}

impl Error {
    /// An [`Error::Io`] with what was being done.
    pub fn io(what: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            what: what.to_string(),
            source,
        }
    }

    /// An [`Error::Unexpected`].
    pub fn unexpected(message: impl Into<String>) -> Self {
        Error::Unexpected(message.into())
    }
}
