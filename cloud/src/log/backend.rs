//! The choice of event log backend, made in one place: `skerry serve` builds a
//! [`LogBackend`] from its configuration and [`open`]s it; nothing else names a backend.
//!
//! A second backend (JetStream, `jetstream.rs` beside `redb_log.rs`) is a new variant
//! here and a new arm in [`open`], behind the same [`EventLog`] trait.

use std::path::PathBuf;
use std::sync::Arc;

use super::{EventLog, LogError, RedbLog};

/// Which backend the event log is on, with that backend's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogBackend {
    /// The embedded log: one redb file at `path`, with a page cache of `cache_bytes`.
    Redb { path: PathBuf, cache_bytes: usize },
}

/// Opens (or creates) the log on `backend`. Blocks (the embedded backend opens a file and
/// checks its integrity): call it on the blocking pool.
pub fn open(backend: &LogBackend) -> Result<Arc<dyn EventLog>, LogError> {
    match backend {
        LogBackend::Redb { path, cache_bytes } => Ok(Arc::new(RedbLog::open(path, *cache_bytes)?)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_redb_backend_opens_the_file_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.redb");
        let log = open(&LogBackend::Redb {
            path: path.clone(),
            cache_bytes: 1 << 20,
        })
        .unwrap();
        assert_eq!(log.last_seq().unwrap(), 0);
        assert!(path.exists());
    }
}
