//! [`AgentError`]: why the agent stopped.

use crate::journal::JournalError;

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(
        "not enrolled yet: the first run needs --cloud URL and a token (--token-file FILE, SKERRY_TOKEN or --token TOKEN)"
    )]
    NotEnrolled,
    #[error(transparent)]
    Enroll(#[from] crate::enroll::EnrollError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
    #[error(transparent)]
    Link(#[from] crate::link::LinkError),
    #[error("{0}")]
    Io(String),
}
