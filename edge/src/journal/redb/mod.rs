//! [`RedbJournal`]: the journal in a redb file (`<data>/journal.redb`).
//!
//! Tables:
//! - `meta` (`&str` to `u64`): `format` ([`FORMAT`]), `epoch`, and `applied` (the
//!   desired state's, to check a commit without decoding it);
//! - `state` (`&str` to bytes): `desired`, the postcard [`NodeDesired`];
//! - `events` (`node_seq` to the postcard [`NodeEvent`]) and `event_digests` (`node_seq`
//!   to the event's content digest), pruned together to the retention;
//! - `inits_succeeded` ((instance, component, spec hash) to `()`), `inits_failed`
//!   ((instance, component) to (spec hash, deployed_at, exit code)), `nodeports`
//!   ((instance, component, replica, container port) to host port) and `restarts`
//!   ((instance, component, replica) to count): the memos;
//! - `outbox_control` and `outbox_logs` (`seq` to the postcard [`OutboxBody`]): the outbox's
//!   two lanes, one table each so that a lane is read by a range; `outbox_replicas`
//!   ((instance, component, replica) to `seq`): the queued `Replica` entry of each replica,
//!   for coalescing; its counters in `meta` (`outbox_next_seq`, `outbox_log_bytes`,
//!   `outbox_complete`, `outbox_dropped` and `outbox_waiting` (the `seq` of the one queued
//!   `Complete`, `LogsDropped` and `LogsWaiting`, 0: none), `outbox_dropped_lines`,
//!   `outbox_dropped_batches`, `outbox_control_bytes`, `outbox_dropped_reports`; a journal
//!   written before the last two existed counts its control bytes from 0);
//! - `log_cursors` (`&str` to bytes): the log collector's cursors.
//!
//! The format is a promise: a journal written by an earlier build must open. A change that
//! an older build could not read takes a new [`FORMAT`], and a journal of a format this
//! build does not know is refused ([`JournalError::UnknownFormat`]) rather than guessed at.
//! New tables can be added without one (an older build ignores them): the outbox's tables
//! came so, and a journal that does not have them yet (opened read-only while an older
//! agent runs it) reads as an empty outbox.
//!
//! From the facts about redb:
//! - the page cache is set from the firmware profile (`agent.redb_cache`; redb's own
//!   default is 1 GiB);
//! - every open checks the file's integrity (every page's checksum), so a damaged file is
//!   reported as [`JournalError::Corrupt`] and never acted on;
//! - every write is one transaction with [`Durability::Immediate`]: one fsync per batch;
//! - after any storage error (a full disk above all) redb refuses further I/O on that
//!   handle, so the journal drops the database and opens it again, with the integrity
//!   check, before the next operation.
//!
//! Files are opened in redb's `SingleWriter` mode: the agent is the one writer, and
//! `skerry-edge status` and `events` open the same file read-only
//! ([`RedbJournal::open_read_only`]) while the agent runs, reading its commits. A second
//! writer is refused ([`JournalError::Locked`]).

use std::io;
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use ::redb::{
    Builder, ConcurrencyMode, Database, DatabaseError, Durability, Key, ReadOnlyDatabase,
    ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    StorageBackend, Table, TableDefinition, TableError, Value, WriteTransaction,
};
use parking_lot::Mutex;
use skerry_shared::event::NodeEvent;
use skerry_shared::hash::Digest;
use skerry_shared::ids::Name;
use skerry_shared::outbox::{Lane, LogBatch, OutboxBody, OutboxEntry};
use skerry_shared::planner::{FailedInit, ReplicaKey};
use skerry_shared::reducer::NodeDesired;

use super::outbox::{self, Counters, OutboxStore, ReadLimit};
use super::{
    Commit, DEFAULT_RETENTION, EventSpan, Journal, JournalError, JournalState, MemoChange,
    MemoChanges, Memos, NodePortKey, OutboxPush, OutboxStats, Pushed, RECENT_DIGESTS,
};

/// The journal's on-disk format; bump on a change an older build cannot read.
pub const FORMAT: u64 = 1;

/// The page cache when no profile says otherwise (`agent.redb_cache`'s default).
pub const DEFAULT_CACHE_BYTES: usize = 16 * 1024 * 1024;

mod journal_impl;
mod memos;
mod open;
mod outbox_store;
mod tables;

/// An open database: the agent's (writable) or an inspector's.
enum Handle {
    Writer(Database),
    Reader(ReadOnlyDatabase),
}

impl Handle {
    fn begin_read(&self) -> Result<ReadTransaction, ::redb::TransactionError> {
        match self {
            Handle::Writer(db) => db.begin_read(),
            Handle::Reader(db) => db.begin_read(),
        }
    }
}

type Opener = Box<dyn Fn(&Builder) -> Result<Handle, DatabaseError> + Send + Sync>;

/// The journal in a redb file.
pub struct RedbJournal {
    /// The file's path (or the backend's name), for messages.
    name: String,
    cache_bytes: usize,
    mode: ConcurrencyMode,
    /// Opened for `status` and `events`: every write is refused.
    read_only: bool,
    retention: usize,
    opener: Opener,
    /// `None` after a storage error: the next operation opens the database again.
    db: Mutex<Option<Handle>>,
    /// Bytes of control entries the outbox keeps (`agent.outbox_quota`; none by default).
    outbox_quota: std::sync::atomic::AtomicU64,
    /// The cap on the log quota (the disk budget's; none by default).
    log_ceiling: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for RedbJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbJournal")
            .field("name", &self.name)
            .field("cache_bytes", &self.cache_bytes)
            .field("read_only", &self.read_only)
            .field("retention", &self.retention)
            // `try_lock`: never wait on (or deadlock with) an operation in progress.
            .field("open", &self.db.try_lock().map(|db| db.is_some()))
            .finish()
    }
}

/// The most damaged journals set aside under distinct names within one second; past it,
/// the last name is reused.
pub const MAX_SET_ASIDE_PER_SECOND: u32 = 100;

impl RedbJournal {
    /// Opens the journal at `path`, creating it when there is none, with a page cache of
    /// `cache_bytes` (the profile's `agent.redb_cache`). The file's integrity is checked:
    /// a damaged file is [`JournalError::Corrupt`], a file of an unknown format
    /// [`JournalError::UnknownFormat`], and a file another process holds
    /// [`JournalError::Locked`].
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Self, JournalError> {
        let owned: PathBuf = path.to_owned();
        Self::with_opener(
            path.display().to_string(),
            cache_bytes,
            ConcurrencyMode::SingleWriter,
            false,
            Box::new(move |b: &Builder| b.create(&owned).map(Handle::Writer)),
        )
    }

    /// Opens the agent's journal at `path` as [`RedbJournal::open`] does and loads it; a
    /// journal found damaged (at open or while loading) is not used at all: the file is
    /// renamed `NAME.damaged-SECS` (seconds since the epoch, now; `NAME.damaged-SECS-N` for
    /// the Nth within one second, up to [`MAX_SET_ASIDE_PER_SECOND`]) beside it, and a new,
    /// empty journal (with a new epoch) is created in its place. Returns the journal, what
    /// it holds, and where the damaged file went, if one was set aside. Any other failure
    /// is returned as it is, and nothing is moved.
    pub fn open_or_set_aside(
        path: &Path,
        cache_bytes: usize,
    ) -> Result<(Self, JournalState, Option<PathBuf>), JournalError> {
        let opened = Self::open(path, cache_bytes).and_then(|j| {
            let state = j.load()?;
            Ok((j, state))
        });
        let reason = match opened {
            Ok((j, state)) => return Ok((j, state, None)),
            Err(JournalError::Corrupt { reason, .. }) => reason,
            Err(other) => return Err(other),
        };
        // The failed open (or the journal it gave) is dropped by now: the file is free.
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Two set aside within one second keep both: `-2`, `-3`, ... after the first.
        let named = |n: u32| {
            let mut aside = path.as_os_str().to_owned();
            if n == 1 {
                aside.push(format!(".damaged-{secs}"));
            } else {
                aside.push(format!(".damaged-{secs}-{n}"));
            }
            PathBuf::from(aside)
        };
        let aside = (1..=MAX_SET_ASIDE_PER_SECOND)
            .map(named)
            .find(|p| !p.exists())
            .unwrap_or_else(|| named(MAX_SET_ASIDE_PER_SECOND));
        std::fs::rename(path, &aside).map_err(|e| JournalError::Storage {
            journal: path.display().to_string(),
            reason: format!(
                "the journal is damaged ({reason}) and cannot be moved to {}: {e}",
                aside.display()
            ),
        })?;
        tracing::error!(
            journal = %path.display(),
            moved_to = %aside.display(),
            %reason,
            "the journal is damaged: nothing in it is used; it was set aside and a new one started"
        );
        let journal = Self::open(path, cache_bytes)?;
        let state = journal.load()?;
        Ok((journal, state, Some(aside)))
    }

    /// Opens an existing journal to write: like [`RedbJournal::open`], but a missing file
    /// is [`JournalError::Missing`] and none is created.
    pub fn open_existing(path: &Path, cache_bytes: usize) -> Result<Self, JournalError> {
        let owned = Self::existing(path)?;
        Self::with_opener(
            path.display().to_string(),
            cache_bytes,
            ConcurrencyMode::SingleWriter,
            false,
            Box::new(move |b: &Builder| b.open(&owned).map(Handle::Writer)),
        )
    }

    /// Opens an existing journal to read, for `skerry-edge status` and `events`, also while
    /// the agent runs (it then reads what the agent has committed). Every write is refused
    /// ([`JournalError::ReadOnly`]). A missing file is [`JournalError::Missing`].
    ///
    /// When no agent has the file open and the last one did not close it (a crash), redb
    /// must recover it before it can be read: the journal is then opened as the agent
    /// would open it, with the integrity check and its repair, and still refuses writes.
    pub fn open_read_only(path: &Path, cache_bytes: usize) -> Result<Self, JournalError> {
        let owned = Self::existing(path)?;
        Self::with_opener(
            path.display().to_string(),
            cache_bytes,
            ConcurrencyMode::SingleWriter,
            true,
            Box::new(move |b: &Builder| match b.open_read_only(&owned) {
                Err(DatabaseError::RepairAborted) => b.open(&owned).map(Handle::Writer),
                other => other.map(Handle::Reader),
            }),
        )
    }

    fn existing(path: &Path) -> Result<PathBuf, JournalError> {
        if path.exists() {
            Ok(path.to_owned())
        } else {
            Err(JournalError::Missing {
                journal: path.display().to_string(),
            })
        }
    }

    /// Opens a journal on storage that `backend` makes, called again for every reopen (a
    /// test seam, as redb's own `StorageBackend` is: faults such as a full disk can be
    /// injected).
    pub fn open_with_backend<B, F>(
        name: &str,
        cache_bytes: usize,
        backend: F,
    ) -> Result<Self, JournalError>
    where
        B: StorageBackend,
        F: Fn() -> io::Result<B> + Send + Sync + 'static,
    {
        // The shared modes need the backend's byte-range locks; a test backend has none.
        Self::with_opener(
            name.to_owned(),
            cache_bytes,
            ConcurrencyMode::ExclusiveWriter,
            false,
            Box::new(move |b: &Builder| b.create_with_backend(backend()?).map(Handle::Writer)),
        )
    }

    /// The journal's path in the agent's data directory.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join(super::FILE_NAME)
    }

    /// Keeps at most `events` events (the oldest are pruned in each commit's transaction).
    pub fn with_retention(mut self, events: usize) -> Self {
        self.retention = events;
        self
    }

    /// Whether the database is open now (`false` after a storage error, until the next
    /// operation opens it again).
    pub fn is_open(&self) -> bool {
        self.db.lock().is_some()
    }
}
