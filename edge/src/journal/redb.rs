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

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const DIGESTS: TableDefinition<u64, [u8; 32]> = TableDefinition::new("event_digests");
const INITS_SUCCEEDED: TableDefinition<(&str, &str, [u8; 32]), ()> =
    TableDefinition::new("inits_succeeded");
const INITS_FAILED: TableDefinition<(&str, &str), ([u8; 32], u64, i64)> =
    TableDefinition::new("inits_failed");
const NODEPORTS: TableDefinition<(&str, &str, u32, u16), u16> = TableDefinition::new("nodeports");
const RESTARTS: TableDefinition<(&str, &str, u32), u32> = TableDefinition::new("restarts");
const OUTBOX_CONTROL: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox_control");
const OUTBOX_LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox_logs");
const OUTBOX_REPLICAS: TableDefinition<(&str, &str, u32), u64> =
    TableDefinition::new("outbox_replicas");
const LOG_CURSORS: TableDefinition<&str, &[u8]> = TableDefinition::new("log_cursors");

const KEY_FORMAT: &str = "format";
const KEY_EPOCH: &str = "epoch";
const KEY_DESIRED: &str = "desired";
/// The `applied` of the stored desired state, so that a commit checks it without decoding.
const KEY_APPLIED: &str = "applied";
const KEY_OUTBOX_NEXT_SEQ: &str = "outbox_next_seq";
const KEY_OUTBOX_LOG_BYTES: &str = "outbox_log_bytes";
const KEY_OUTBOX_COMPLETE: &str = "outbox_complete";
const KEY_OUTBOX_DROPPED: &str = "outbox_dropped";
const KEY_OUTBOX_DROPPED_LINES: &str = "outbox_dropped_lines";
const KEY_OUTBOX_DROPPED_BATCHES: &str = "outbox_dropped_batches";
const KEY_OUTBOX_CONTROL_BYTES: &str = "outbox_control_bytes";
/// The `seq` of the one queued `LogsWaiting` (0: none).
const KEY_OUTBOX_WAITING: &str = "outbox_waiting";
const KEY_OUTBOX_DROPPED_REPORTS: &str = "outbox_dropped_reports";

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
    /// renamed `NAME.damaged-SECS` (seconds since the epoch, now) beside it, and a new,
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
        let mut aside = path.as_os_str().to_owned();
        aside.push(format!(".damaged-{secs}"));
        let aside = PathBuf::from(aside);
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

    fn with_opener(
        name: String,
        cache_bytes: usize,
        mode: ConcurrencyMode,
        read_only: bool,
        opener: Opener,
    ) -> Result<Self, JournalError> {
        let journal = Self {
            name,
            cache_bytes,
            mode,
            read_only,
            retention: DEFAULT_RETENTION,
            opener,
            db: Mutex::new(None),
            outbox_quota: std::sync::atomic::AtomicU64::new(u64::MAX),
            log_ceiling: std::sync::atomic::AtomicU64::new(u64::MAX),
        };
        let db = journal.open_db()?;
        *journal.db.lock() = Some(db);
        Ok(journal)
    }

    /// Opens the database with the integrity check, and checks or writes its format.
    fn open_db(&self) -> Result<Handle, JournalError> {
        let mut builder = Builder::new();
        builder
            .set_cache_size(self.cache_bytes)
            .set_concurrency_mode(self.mode)
            .set_check_integrity_on_open(true);
        let handle = (self.opener)(&builder).map_err(|e| self.open_error(e))?;
        match &handle {
            Handle::Writer(db) if !self.read_only => self.init(db)?,
            _ => self.check_format(&handle)?,
        }
        Ok(handle)
    }

    /// Checks the format without writing.
    fn check_format(&self, handle: &Handle) -> Result<(), JournalError> {
        let rx = handle.begin_read().map_err(|e| self.err(e))?;
        let meta = match rx.open_table(META) {
            Ok(meta) => meta,
            Err(::redb::TableError::TableDoesNotExist(_)) => {
                return Err(self.corrupt("it has no meta table: not a Skerry journal".into()));
            }
            Err(e) => return Err(self.err(e)),
        };
        match meta
            .get(KEY_FORMAT)
            .map_err(|e| self.err(e))?
            .map(|g| g.value())
        {
            Some(FORMAT) => Ok(()),
            Some(found) => Err(JournalError::UnknownFormat {
                journal: self.name.clone(),
                found,
                supported: FORMAT,
            }),
            None => Err(self.corrupt("its format is not recorded".into())),
        }
    }

    fn init(&self, db: &Database) -> Result<(), JournalError> {
        let tx = self.begin_write(db)?;
        {
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            let format = meta
                .get(KEY_FORMAT)
                .map_err(|e| self.err(e))?
                .map(|g| g.value());
            match format {
                Some(FORMAT) => {}
                Some(found) => {
                    return Err(JournalError::UnknownFormat {
                        journal: self.name.clone(),
                        found,
                        supported: FORMAT,
                    });
                }
                None => {
                    meta.insert(KEY_FORMAT, FORMAT).map_err(|e| self.err(e))?;
                    let epoch = rand::random::<u64>().max(1);
                    meta.insert(KEY_EPOCH, epoch).map_err(|e| self.err(e))?;
                }
            }
            tx.open_table(STATE).map_err(|e| self.err(e))?;
            tx.open_table(EVENTS).map_err(|e| self.err(e))?;
            tx.open_table(DIGESTS).map_err(|e| self.err(e))?;
            tx.open_table(INITS_SUCCEEDED).map_err(|e| self.err(e))?;
            tx.open_table(INITS_FAILED).map_err(|e| self.err(e))?;
            tx.open_table(NODEPORTS).map_err(|e| self.err(e))?;
            tx.open_table(RESTARTS).map_err(|e| self.err(e))?;
            tx.open_table(OUTBOX_CONTROL).map_err(|e| self.err(e))?;
            tx.open_table(OUTBOX_LOGS).map_err(|e| self.err(e))?;
            tx.open_table(OUTBOX_REPLICAS).map_err(|e| self.err(e))?;
            tx.open_table(LOG_CURSORS).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn begin_write(&self, db: &Database) -> Result<WriteTransaction, JournalError> {
        let mut tx = db.begin_write().map_err(|e| self.err(e))?;
        tx.set_durability(Durability::Immediate)
            .map_err(|e| self.err(e))?;
        Ok(tx)
    }

    /// Runs `f` on the open database, opening it first if a storage error closed it, and
    /// closing it after a storage error so that the next operation opens it again.
    fn with_db<T>(
        &self,
        f: impl FnOnce(&Handle) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let mut slot = self.db.lock();
        let db = match slot.take() {
            Some(db) => db,
            None => {
                tracing::info!(journal = %self.name, "opening the journal again");
                self.open_db()?
            }
        };
        let result = f(&db);
        match &result {
            Err(
                e @ (JournalError::Storage { .. }
                | JournalError::DiskFull { .. }
                | JournalError::Corrupt { .. }),
            ) => {
                tracing::warn!(
                    journal = %self.name,
                    error = %e,
                    "journal operation failed; the journal is opened again before the next one"
                );
                drop(db);
            }
            _ => *slot = Some(db),
        }
        result
    }

    /// One write transaction, committed with `Durability::Immediate` when `f` succeeds.
    fn write<T>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        if self.read_only {
            return Err(JournalError::ReadOnly {
                journal: self.name.clone(),
            });
        }
        self.with_db(|handle| {
            let Handle::Writer(db) = handle else {
                return Err(JournalError::ReadOnly {
                    journal: self.name.clone(),
                });
            };
            let tx = self.begin_write(db)?;
            match f(&tx) {
                Ok(value) => {
                    tx.commit().map_err(|e| self.err(e))?;
                    Ok(value)
                }
                Err(e) => {
                    // Nothing of the batch is stored; an abort that fails changes nothing
                    // more.
                    let _ = tx.abort();
                    Err(e)
                }
            }
        })
    }

    fn open_error(&self, e: DatabaseError) -> JournalError {
        match e {
            DatabaseError::Storage(::redb::StorageError::Io(io))
                if io.kind() == io::ErrorKind::NotFound =>
            {
                JournalError::Missing {
                    journal: self.name.clone(),
                }
            }
            // A file cut short ends before the pages its header points to; a file whose
            // header is not redb's ("magic number mismatch") is invalid data.
            DatabaseError::Storage(::redb::StorageError::Io(io))
                if matches!(
                    io.kind(),
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData
                ) =>
            {
                self.corrupt(io.to_string())
            }
            DatabaseError::RepairAborted => self.corrupt("the repair was aborted".into()),
            other => self.err(other),
        }
    }

    fn err(&self, e: impl Into<::redb::Error>) -> JournalError {
        let journal = self.name.clone();
        match e.into() {
            ::redb::Error::Corrupted(reason) => JournalError::Corrupt { journal, reason },
            ::redb::Error::DatabaseAlreadyOpen => JournalError::Locked { journal },
            ::redb::Error::Io(io)
                if matches!(
                    io.kind(),
                    io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
                ) =>
            {
                JournalError::DiskFull { journal }
            }
            other => JournalError::Storage {
                journal,
                reason: other.to_string(),
            },
        }
    }

    fn corrupt(&self, reason: String) -> JournalError {
        JournalError::Corrupt {
            journal: self.name.clone(),
            reason,
        }
    }

    fn decode_event(&self, node_seq: u64, bytes: &[u8]) -> Result<NodeEvent, JournalError> {
        let ev: NodeEvent = postcard::from_bytes(bytes)
            .map_err(|e| self.corrupt(format!("event {node_seq} does not decode: {e}")))?;
        if ev.node_seq != node_seq {
            return Err(self.corrupt(format!(
                "the event stored as node_seq {node_seq} says {}",
                ev.node_seq
            )));
        }
        Ok(ev)
    }

    fn name(&self, s: &str, what: &str) -> Result<Name, JournalError> {
        Name::parse(s).map_err(|e| self.corrupt(format!("{what} {s:?}: {e}")))
    }

    fn stored_desired(
        &self,
        table: &impl ReadableTable<&'static str, &'static [u8]>,
    ) -> Result<Option<NodeDesired>, JournalError> {
        let Some(bytes) = table.get(KEY_DESIRED).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        postcard::from_bytes(bytes.value())
            .map(Some)
            .map_err(|e| self.corrupt(format!("the desired state does not decode: {e}")))
    }

    fn load_memos(&self, rx: &ReadTransaction) -> Result<Memos, JournalError> {
        let mut memos = Memos::default();
        let t = rx.open_table(INITS_SUCCEEDED).map_err(|e| self.err(e))?;
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, _) = item.map_err(|e| self.err(e))?;
            let (instance, component, hash) = k.value();
            memos.inits_succeeded.insert((
                self.name(instance, "instance")?,
                self.name(component, "component")?,
                Digest(hash),
            ));
        }
        let t = rx.open_table(INITS_FAILED).map_err(|e| self.err(e))?;
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let (instance, component) = k.value();
            let (hash, deployed_at, code) = v.value();
            memos.inits_failed.insert(
                (
                    self.name(instance, "instance")?,
                    self.name(component, "component")?,
                ),
                FailedInit {
                    spec_hash: Digest(hash),
                    deployed_at,
                    code,
                },
            );
        }
        let t = rx.open_table(NODEPORTS).map_err(|e| self.err(e))?;
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let (instance, component, replica, container_port) = k.value();
            let key = NodePortKey {
                replica: ReplicaKey {
                    instance: self.name(instance, "instance")?,
                    component: self.name(component, "component")?,
                    replica,
                },
                container_port,
            };
            memos.nodeports.insert(key, v.value());
        }
        let t = rx.open_table(RESTARTS).map_err(|e| self.err(e))?;
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let (instance, component, replica) = k.value();
            let key = ReplicaKey {
                instance: self.name(instance, "instance")?,
                component: self.name(component, "component")?,
                replica,
            };
            memos.restarts.insert(key, v.value());
        }
        Ok(memos)
    }

    fn write_memos(
        &self,
        tx: &WriteTransaction,
        changes: &MemoChanges,
    ) -> Result<(), JournalError> {
        if changes.is_empty() {
            return Ok(());
        }
        let e = |e: ::redb::TableError| self.err(e);
        let mut ok = tx.open_table(INITS_SUCCEEDED).map_err(e)?;
        let mut failed = tx.open_table(INITS_FAILED).map_err(e)?;
        let mut ports = tx.open_table(NODEPORTS).map_err(e)?;
        let mut restarts = tx.open_table(RESTARTS).map_err(e)?;
        let s = |e: ::redb::StorageError| self.err(e);
        for change in &changes.changes {
            match change {
                MemoChange::InitSucceeded {
                    instance,
                    component,
                    spec_hash,
                } => {
                    ok.insert((instance.as_str(), component.as_str(), spec_hash.0), ())
                        .map_err(s)?;
                }
                MemoChange::InitFailed {
                    instance,
                    component,
                    failure,
                } => {
                    let value = (failure.spec_hash.0, failure.deployed_at, failure.code);
                    failed
                        .insert((instance.as_str(), component.as_str()), value)
                        .map_err(s)?;
                }
                MemoChange::InitFailureCleared {
                    instance,
                    component,
                } => {
                    failed
                        .remove((instance.as_str(), component.as_str()))
                        .map_err(s)?;
                }
                MemoChange::NodePort { port, host_port } => {
                    ports.insert(port_key(port), *host_port).map_err(s)?;
                }
                MemoChange::NodePortReleased { port } => {
                    ports.remove(port_key(port)).map_err(s)?;
                }
                MemoChange::Restarts { replica, count } => {
                    restarts.insert(replica_key(replica), *count).map_err(s)?;
                }
                MemoChange::RestartsCleared { replica } => {
                    restarts.remove(replica_key(replica)).map_err(s)?;
                }
                MemoChange::InstanceForgotten { instance } => {
                    let i = instance.as_str();
                    ok.retain(|k, _| k.0 != i).map_err(s)?;
                    failed.retain(|k, _| k.0 != i).map_err(s)?;
                    ports.retain(|k, _| k.0 != i).map_err(s)?;
                    restarts.retain(|k, _| k.0 != i).map_err(s)?;
                }
            }
        }
        Ok(())
    }
}

impl RedbJournal {
    /// A table opened to read; `None` when the file does not have it yet (a journal an older
    /// build wrote, opened read-only).
    fn optional_table<K: Key + 'static, V: Value + 'static>(
        &self,
        rx: &ReadTransaction,
        table: TableDefinition<K, V>,
    ) -> Result<Option<ReadOnlyTable<K, V>>, JournalError> {
        match rx.open_table(table) {
            Ok(t) => Ok(Some(t)),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    fn read_counters(
        &self,
        meta: &impl ReadableTable<&'static str, u64>,
    ) -> Result<Counters, JournalError> {
        let get = |key: &str| -> Result<Option<u64>, JournalError> {
            Ok(meta.get(key).map_err(|e| self.err(e))?.map(|g| g.value()))
        };
        let fresh = Counters::default();
        Ok(Counters {
            next_seq: get(KEY_OUTBOX_NEXT_SEQ)?.unwrap_or(fresh.next_seq),
            log_bytes: get(KEY_OUTBOX_LOG_BYTES)?.unwrap_or(fresh.log_bytes),
            complete: get(KEY_OUTBOX_COMPLETE)?.filter(|seq| *seq != 0),
            dropped: get(KEY_OUTBOX_DROPPED)?.filter(|seq| *seq != 0),
            waiting: get(KEY_OUTBOX_WAITING)?.filter(|seq| *seq != 0),
            dropped_lines: get(KEY_OUTBOX_DROPPED_LINES)?.unwrap_or(fresh.dropped_lines),
            dropped_batches: get(KEY_OUTBOX_DROPPED_BATCHES)?.unwrap_or(fresh.dropped_batches),
            control_bytes: get(KEY_OUTBOX_CONTROL_BYTES)?.unwrap_or(fresh.control_bytes),
            dropped_reports: get(KEY_OUTBOX_DROPPED_REPORTS)?.unwrap_or(fresh.dropped_reports),
        })
    }

    fn decode_entry(&self, lane: Lane, seq: u64, bytes: &[u8]) -> Result<OutboxBody, JournalError> {
        let body: OutboxBody = postcard::from_bytes(bytes)
            .map_err(|e| self.corrupt(format!("outbox entry {seq} does not decode: {e}")))?;
        outbox::check_lane(lane, seq, &body, |reason| self.corrupt(reason))?;
        Ok(body)
    }
}

/// The outbox's tables in one write transaction, for the rules in [`outbox`] (its
/// `OutboxStore`).
struct RedbOutbox<'j, 't> {
    journal: &'j RedbJournal,
    meta: Table<'t, &'static str, u64>,
    control: Table<'t, u64, &'static [u8]>,
    logs: Table<'t, u64, &'static [u8]>,
    replicas: Table<'t, (&'static str, &'static str, u32), u64>,
    cursors: Table<'t, &'static str, &'static [u8]>,
}

impl<'j, 't> RedbOutbox<'j, 't> {
    fn open(journal: &'j RedbJournal, tx: &'t WriteTransaction) -> Result<Self, JournalError> {
        let e = |e: TableError| journal.err(e);
        Ok(Self {
            journal,
            meta: tx.open_table(META).map_err(e)?,
            control: tx.open_table(OUTBOX_CONTROL).map_err(e)?,
            logs: tx.open_table(OUTBOX_LOGS).map_err(e)?,
            replicas: tx.open_table(OUTBOX_REPLICAS).map_err(e)?,
            cursors: tx.open_table(LOG_CURSORS).map_err(e)?,
        })
    }

    fn s(&self) -> impl Fn(::redb::StorageError) -> JournalError + '_ {
        |e| self.journal.err(e)
    }
}

impl OutboxStore for RedbOutbox<'_, '_> {
    fn counters(&mut self) -> Result<Counters, JournalError> {
        self.journal.read_counters(&self.meta)
    }

    fn set_counters(&mut self, c: &Counters) -> Result<(), JournalError> {
        let s = |e: ::redb::StorageError| self.journal.err(e);
        for (key, value) in [
            (KEY_OUTBOX_NEXT_SEQ, c.next_seq),
            (KEY_OUTBOX_LOG_BYTES, c.log_bytes),
            (KEY_OUTBOX_COMPLETE, c.complete.unwrap_or(0)),
            (KEY_OUTBOX_DROPPED, c.dropped.unwrap_or(0)),
            (KEY_OUTBOX_WAITING, c.waiting.unwrap_or(0)),
            (KEY_OUTBOX_DROPPED_LINES, c.dropped_lines),
            (KEY_OUTBOX_DROPPED_BATCHES, c.dropped_batches),
            (KEY_OUTBOX_CONTROL_BYTES, c.control_bytes),
            (KEY_OUTBOX_DROPPED_REPORTS, c.dropped_reports),
        ] {
            self.meta.insert(key, value).map_err(s)?;
        }
        Ok(())
    }

    fn replica(&mut self, key: &ReplicaKey) -> Result<Option<u64>, JournalError> {
        Ok(self
            .replicas
            .get(replica_key(key))
            .map_err(self.s())?
            .map(|g| g.value()))
    }

    fn set_replica(&mut self, key: &ReplicaKey, seq: Option<u64>) -> Result<(), JournalError> {
        let s = |e: ::redb::StorageError| self.journal.err(e);
        match seq {
            Some(seq) => self.replicas.insert(replica_key(key), seq).map(drop),
            None => self.replicas.remove(replica_key(key)).map(drop),
        }
        .map_err(s)
    }

    fn take_replicas(&mut self) -> Result<Vec<u64>, JournalError> {
        let s = |e: ::redb::StorageError| self.journal.err(e);
        let mut seqs = Vec::new();
        for item in self.replicas.iter().map_err(s)? {
            seqs.push(item.map_err(s)?.1.value());
        }
        self.replicas.retain(|_, _| false).map_err(s)?;
        Ok(seqs)
    }

    fn insert(
        &mut self,
        seq: u64,
        body: &OutboxBody,
        encoded: Vec<u8>,
    ) -> Result<(), JournalError> {
        let s = |e: ::redb::StorageError| self.journal.err(e);
        let table = match body.lane() {
            Lane::Control => &mut self.control,
            Lane::Logs => &mut self.logs,
        };
        table.insert(seq, encoded.as_slice()).map_err(s)?;
        Ok(())
    }

    fn take_control(&mut self, seq: u64) -> Result<Option<OutboxBody>, JournalError> {
        let s = |e: ::redb::StorageError| self.journal.err(e);
        let Some(bytes) = self.control.remove(seq).map_err(s)? else {
            return Ok(None);
        };
        self.journal
            .decode_entry(Lane::Control, seq, bytes.value())
            .map(Some)
    }

    fn take_log(&mut self, seq: u64) -> Result<Option<u64>, JournalError> {
        let s = |e: ::redb::StorageError| self.journal.err(e);
        Ok(self
            .logs
            .remove(seq)
            .map_err(s)?
            .map(|bytes| bytes.value().len() as u64))
    }

    fn take_oldest_log(&mut self) -> Result<Option<(u64, u64, LogBatch)>, JournalError> {
        let s = |e: ::redb::StorageError| self.journal.err(e);
        let Some((k, v)) = self.logs.pop_first().map_err(s)? else {
            return Ok(None);
        };
        let (seq, bytes) = (k.value(), v.value());
        match self.journal.decode_entry(Lane::Logs, seq, bytes)? {
            OutboxBody::Logs(batch) => Ok(Some((seq, bytes.len() as u64, batch))),
            _ => Err(self
                .journal
                .corrupt(format!("outbox entry {seq} is not a log batch"))),
        }
    }

    fn set_cursor(&mut self, name: &str, value: Option<&[u8]>) -> Result<(), JournalError> {
        let s = |e: ::redb::StorageError| self.journal.err(e);
        match value {
            Some(value) => self.cursors.insert(name, value).map(drop),
            None => self.cursors.remove(name).map(drop),
        }
        .map_err(s)
    }

    fn corrupt(&self, reason: String) -> JournalError {
        self.journal.corrupt(reason)
    }
}

fn port_key(k: &NodePortKey) -> (&str, &str, u32, u16) {
    (
        k.replica.instance.as_str(),
        k.replica.component.as_str(),
        k.replica.replica,
        k.container_port,
    )
}

fn replica_key(k: &ReplicaKey) -> (&str, &str, u32) {
    (k.instance.as_str(), k.component.as_str(), k.replica)
}

impl Journal for RedbJournal {
    fn load(&self) -> Result<JournalState, JournalError> {
        self.with_db(|db| {
            let rx = db.begin_read().map_err(|e| self.err(e))?;
            let meta = rx.open_table(META).map_err(|e| self.err(e))?;
            let epoch = meta
                .get(KEY_EPOCH)
                .map_err(|e| self.err(e))?
                .map(|g| g.value())
                .ok_or_else(|| self.corrupt("the epoch is missing".into()))?;
            let state = rx.open_table(STATE).map_err(|e| self.err(e))?;
            let desired = self.stored_desired(&state)?;
            let digests = rx.open_table(DIGESTS).map_err(|e| self.err(e))?;
            let mut recent = std::collections::BTreeMap::new();
            for item in digests
                .iter()
                .map_err(|e| self.err(e))?
                .rev()
                .take(RECENT_DIGESTS)
            {
                let (k, v) = item.map_err(|e| self.err(e))?;
                recent.insert(k.value(), Digest(v.value()));
            }
            let memos = self.load_memos(&rx)?;
            Ok(JournalState {
                desired,
                epoch,
                memos,
                recent,
            })
        })
    }

    fn commit(&self, batch: &Commit) -> Result<(), JournalError> {
        let desired = postcard::to_stdvec(&*batch.desired).map_err(|e| {
            JournalError::InvalidCommit(format!("the desired state does not encode: {e}"))
        })?;
        let mut encoded = Vec::with_capacity(batch.events.len());
        for ev in &batch.events {
            let bytes = postcard::to_stdvec(ev).map_err(|e| {
                JournalError::InvalidCommit(format!("event {} does not encode: {e}", ev.node_seq))
            })?;
            encoded.push((ev.node_seq, bytes, ev.digest()));
        }
        self.write(|tx| {
            let e = |e: ::redb::TableError| self.err(e);
            let s = |e: ::redb::StorageError| self.err(e);
            let mut meta = tx.open_table(META).map_err(e)?;
            let applied = meta.get(KEY_APPLIED).map_err(s)?.map_or(0, |g| g.value());
            batch.check_continues(applied)?;
            let mut state = tx.open_table(STATE).map_err(e)?;
            let mut events = tx.open_table(EVENTS).map_err(e)?;
            let mut digests = tx.open_table(DIGESTS).map_err(e)?;
            if let Some(snapshot) = &batch.snapshot {
                events
                    .retain_in(..=snapshot.node_seq, |_, _| false)
                    .map_err(s)?;
                digests
                    .retain_in(..=snapshot.node_seq, |_, _| false)
                    .map_err(s)?;
            }
            for (node_seq, bytes, digest) in &encoded {
                events.insert(*node_seq, bytes.as_slice()).map_err(s)?;
                digests.insert(*node_seq, digest.0).map_err(s)?;
            }
            let stored = events.len().map_err(s)?;
            let excess = stored.saturating_sub(self.retention as u64);
            for _ in 0..excess {
                let first = events.pop_first().map_err(s)?.map(|(k, _)| k.value());
                if let Some(seq) = first {
                    digests.remove(seq).map_err(s)?;
                }
            }
            state.insert(KEY_DESIRED, desired.as_slice()).map_err(s)?;
            meta.insert(KEY_APPLIED, batch.through()).map_err(s)?;
            drop((meta, state, events, digests));
            self.write_memos(tx, &batch.memos)
        })
    }

    fn put_memos(&self, changes: &MemoChanges) -> Result<(), JournalError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.write(|tx| self.write_memos(tx, changes))
    }

    fn event(&self, node_seq: u64) -> Result<Option<NodeEvent>, JournalError> {
        self.with_db(|db| {
            let rx = db.begin_read().map_err(|e| self.err(e))?;
            let t = rx.open_table(EVENTS).map_err(|e| self.err(e))?;
            let Some(bytes) = t.get(node_seq).map_err(|e| self.err(e))? else {
                return Ok(None);
            };
            self.decode_event(node_seq, bytes.value()).map(Some)
        })
    }

    fn events(&self, after: u64, limit: usize) -> Result<Vec<NodeEvent>, JournalError> {
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        self.with_db(|db| {
            let rx = db.begin_read().map_err(|e| self.err(e))?;
            let t = rx.open_table(EVENTS).map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            for item in t.range(start..).map_err(|e| self.err(e))?.take(limit) {
                let (k, v) = item.map_err(|e| self.err(e))?;
                out.push(self.decode_event(k.value(), v.value())?);
            }
            Ok(out)
        })
    }

    fn event_span(&self) -> Result<Option<EventSpan>, JournalError> {
        self.with_db(|db| {
            let rx = db.begin_read().map_err(|e| self.err(e))?;
            let t = rx.open_table(EVENTS).map_err(|e| self.err(e))?;
            let first = t.first().map_err(|e| self.err(e))?.map(|(k, _)| k.value());
            let last = t.last().map_err(|e| self.err(e))?.map(|(k, _)| k.value());
            let count = t.len().map_err(|e| self.err(e))?;
            Ok(match (first, last) {
                (Some(first), Some(last)) => Some(EventSpan { first, last, count }),
                _ => None,
            })
        })
    }

    fn outbox_push(&self, push: &OutboxPush, log_quota: u64) -> Result<Pushed, JournalError> {
        self.write(|tx| {
            let mut store = RedbOutbox::open(self, tx)?;
            let control_quota = self.outbox_quota.load(std::sync::atomic::Ordering::Relaxed);
            let log_quota =
                log_quota.min(self.log_ceiling.load(std::sync::atomic::Ordering::Relaxed));
            outbox::push(&mut store, push, log_quota, control_quota)
        })
    }

    fn set_log_ceiling(&self, bytes: u64) {
        self.log_ceiling
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    fn set_outbox_quota(&self, bytes: u64) {
        self.outbox_quota
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    fn outbox_read(
        &self,
        lane: Lane,
        after: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<OutboxEntry>, JournalError> {
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let table = match lane {
            Lane::Control => OUTBOX_CONTROL,
            Lane::Logs => OUTBOX_LOGS,
        };
        self.with_db(|db| {
            let rx = db.begin_read().map_err(|e| self.err(e))?;
            let Some(t) = self.optional_table(&rx, table)? else {
                return Ok(Vec::new());
            };
            let mut limit = ReadLimit::new(max_entries, max_bytes);
            let mut out = Vec::new();
            for item in t.range(start..).map_err(|e| self.err(e))? {
                let (k, v) = item.map_err(|e| self.err(e))?;
                let (seq, bytes) = (k.value(), v.value());
                if !limit.admits(bytes.len()) {
                    break;
                }
                let body = self.decode_entry(lane, seq, bytes)?;
                out.push(OutboxEntry { seq, body });
            }
            Ok(out)
        })
    }

    fn outbox_ack(&self, seqs: &[u64]) -> Result<(), JournalError> {
        if seqs.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let mut store = RedbOutbox::open(self, tx)?;
            outbox::ack(&mut store, seqs)
        })
    }

    fn outbox_stats(&self) -> Result<OutboxStats, JournalError> {
        self.with_db(|db| {
            let rx = db.begin_read().map_err(|e| self.err(e))?;
            let meta = rx.open_table(META).map_err(|e| self.err(e))?;
            let counters = self.read_counters(&meta)?;
            let mut lens = [0; 2];
            for (len, table) in lens.iter_mut().zip([OUTBOX_CONTROL, OUTBOX_LOGS]) {
                if let Some(t) = self.optional_table(&rx, table)? {
                    *len = t.len().map_err(|e| self.err(e))?;
                }
            }
            Ok(counters.stats(lens[0], lens[1]))
        })
    }

    fn log_cursors(&self) -> Result<BTreeMap<String, Vec<u8>>, JournalError> {
        self.with_db(|db| {
            let rx = db.begin_read().map_err(|e| self.err(e))?;
            let mut out = BTreeMap::new();
            let Some(t) = self.optional_table(&rx, LOG_CURSORS)? else {
                return Ok(out);
            };
            for item in t.iter().map_err(|e| self.err(e))? {
                let (k, v) = item.map_err(|e| self.err(e))?;
                out.insert(k.value().to_owned(), v.value().to_vec());
            }
            Ok(out)
        })
    }
}
