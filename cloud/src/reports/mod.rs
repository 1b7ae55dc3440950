//! The report store: what agents report through their outboxes, kept durably in
//! `<data>/reports.redb`.
//!
//! Agents send [`OutboxEntry`]s of a journal `epoch`; the sync hub hands them to
//! [`ReportStore::ingest`], which answers once they are durable, and acknowledges them to the
//! agent. The store keeps:
//! - per (node, lane), the epoch and the highest `seq` stored: an entry is new when its
//!   epoch differs (a rebuilt journal) or its `seq` is higher, so a resent entry is
//!   acknowledged again but stored once;
//! - the latest replica statuses of every node (`Complete` replaces them, `Replica` sets or
//!   deletes one), at most [`MAX_REPLICAS_PER_NODE`] per node, for the hub to load at start;
//! - log lines, in chunks under a global cursor that numbers every line in ingest order
//!   (gap-free; retention takes from the oldest end), with an index by (instance, cursor);
//! - per (node, instance), the lines the agent dropped for its log quota;
//! - the runs of jobs, one record per run (`jobs`).
//!
//! One writer thread takes requests from a channel and commits everything queued (up to
//! [`MAX_BATCH`] requests, from any nodes) in one transaction with `Durability::Immediate`
//! (group commit), then answers each request and wakes followers ([`ReportStore::subscribe`]).
//! Reads ([`ReportStore::query`]) use their own read transactions and never wait on it.
//!
//! Retention ([`LogRetention`]) removes the oldest chunks (by cursor, which is the order the
//! cloud stored them in): by size in every write, by age once a minute. The age is counted
//! from when the cloud stored a chunk, not from the agent's clock, which may be wrong; the
//! agent's time of each chunk is what `since` filters on.
//!
//! # Layout
//! - `tables`: the redb tables, the records stored in them, and opening the file.
//! - `writer`: the writer thread: dedup, replica statuses, drops, chunks and retention.
//! - `read`: queries of log lines and replica statuses.
//! - `jobs`: job runs, stored and listed.

pub mod jobs;
mod read;
mod tables;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use redb::Database;
use skerry_shared::clock::Timestamp;
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::outbox::OutboxEntry;
use skerry_shared::report::ReplicaStatus;
use tokio::sync::{mpsc, oneshot, watch};

/// The most requests one transaction carries (bounds the writer's memory).
pub const MAX_BATCH: usize = 256;

/// The most replica statuses kept per node (the bound the hub keeps in memory,
/// `sync::replicas::MAX_REPLICAS_PER_NODE`); statuses beyond it are refused and logged.
pub const MAX_REPLICAS_PER_NODE: u64 = 16_384;

/// The most runs of dropped lines kept per (node, instance); older runs are forgotten, the
/// totals are not.
pub const MAX_DROP_SPANS: usize = 1024;

/// How often the writer removes chunks older than the retention.
pub const EXPIRY_INTERVAL: Duration = Duration::from_secs(60);

/// The page cache of `reports.redb`.
const CACHE_BYTES: usize = 32 << 20;

/// How long log lines are kept, and how many bytes of them at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRetention {
    /// Chunks stored longer ago than this are removed.
    pub max_age: Duration,
    /// Beyond this many bytes of stored chunks, the oldest are removed.
    pub max_bytes: u64,
}

impl Default for LogRetention {
    /// 7 days, 1 GiB.
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1 << 30,
        }
    }
}

/// Why the store could not do something.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReportError {
    #[error("report store: {0}")]
    Storage(String),
    #[error("report store: a stored record does not decode: {0}")]
    Corrupt(String),
    #[error("the report store has stopped")]
    Stopped,
}

/// What [`ReportStore::ingest`] did with one node's entries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ingested {
    /// The `seq` of every entry, new, duplicate or malformed: all durable now.
    pub acked: Vec<u64>,
    /// The entries that were new and stored (the hub applies their status in memory).
    pub new: Vec<OutboxEntry>,
    /// Log batches that did not unpack: acknowledged, counted, not stored.
    pub malformed: u64,
    /// The time the store stored them with: what a replica status records as the time of
    /// its report.
    pub at: Timestamp,
}

/// A stored replica status and when the cloud stored it (`None`: an older build did).
pub type StoredStatus = (ReplicaStatus, Option<Timestamp>);

/// Which log lines to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    pub instance: Name,
    pub component: Option<Name>,
    pub node: Option<NodeId>,
    /// Only chunks the agent read at or after this time.
    pub since: Option<Timestamp>,
    /// Only lines after this cursor.
    pub after: Option<u64>,
    /// At most this many lines.
    pub limit: usize,
}

/// A page of log lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    /// In cursor order.
    pub lines: Vec<LogLine>,
    /// The cursor to pass as `after` for the next page: the last line's, or, when the page
    /// reached the end, the last cursor stored (so the next read skips what did not match).
    pub next: u64,
    /// Lines the agents dropped for the instance (filtered by node and component).
    pub dropped: Vec<NodeDrops>,
    /// Files of the instance's log directories that the agents do not read for want of a
    /// slot (filtered by node and component).
    pub waiting: Vec<NodeWaiting>,
}

/// What one node's agent said of files that wait for a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeWaiting {
    pub node: NodeId,
    /// (component, replica, files waiting).
    pub replicas: Vec<(Name, u32, u64)>,
}

/// One stored log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub cursor: u64,
    pub node: NodeId,
    pub component: Name,
    pub replica: u32,
    /// The file's name in the `log_dir`, `(stdout)` or `(stderr)`.
    pub file: String,
    /// The line's number in its file (from 1).
    pub line: u64,
    /// Which piece of a long line this is (0: the first, or the whole line).
    pub part: u32,
    /// More of the line follows (in the next piece).
    pub continued: bool,
    /// When the agent read it.
    pub time: Timestamp,
    pub text: String,
}

/// What one node dropped of an instance's lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDrops {
    pub node: NodeId,
    /// Lines dropped in all (with a component filter: that component's, as its spans say).
    pub lines: u64,
    /// Batches dropped that held lines of the instance. A drop report that covers several
    /// instances counts its batches for each, so this is an upper bound.
    pub batches: u64,
    /// The runs of lines dropped, per file, oldest first (at most [`MAX_DROP_SPANS`]).
    pub files: Vec<FileDrops>,
}

/// A run of dropped lines of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDrops {
    pub component: Name,
    pub replica: u32,
    pub file: String,
    pub first_line: u64,
    pub lines: u64,
}

/// What retention removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Removed {
    pub chunks: u64,
    pub lines: u64,
    pub bytes: u64,
}

/// The store's clock: the wall clock, or one a test sets.
#[derive(Debug, Clone, Default)]
struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    fn now(&self) -> Timestamp {
        match &self.0 {
            Some(ms) => Timestamp(ms.load(Ordering::SeqCst)),
            None => Timestamp::now(),
        }
    }
}

/// The open database, shared by the writer and readers. Empty while the writer reopens it
/// after a failed write (redb refuses further work on a database whose write failed).
#[derive(Debug)]
struct Db {
    path: PathBuf,
    slot: RwLock<Option<Arc<Database>>>,
    /// Set by [`ReportStore::close`]: the file is released and stays closed.
    closed: AtomicBool,
}

impl Db {
    fn get(&self) -> Result<Arc<Database>, ReportError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(ReportError::Stopped);
        }
        self.slot.read().clone().ok_or_else(|| {
            ReportError::Storage(format!(
                "{} is being reopened after a failed write",
                self.path.display()
            ))
        })
    }
}

enum Msg {
    Ingest(Box<IngestJob>),
    /// Applies the retention now (the timer does this every minute).
    Expire(oneshot::Sender<Result<Removed, ReportError>>),
    Stop,
}

struct IngestJob {
    node: NodeId,
    epoch: u64,
    entries: Vec<OutboxEntry>,
    reply: oneshot::Sender<Result<Ingested, ReportError>>,
}

/// A handle on the report store; cheap to clone.
#[derive(Clone)]
pub struct ReportStore {
    tx: mpsc::Sender<Msg>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
    db: Arc<Db>,
    stored: Arc<watch::Sender<u64>>,
    /// Write transactions committed (tests check that concurrent requests share them).
    commits: Arc<AtomicU64>,
}

impl std::fmt::Debug for ReportStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportStore")
            .field("path", &self.db.path)
            .finish_non_exhaustive()
    }
}

impl ReportStore {
    /// Opens (or creates) the store at `path`, checking the file's integrity, and starts the
    /// writer thread. Blocking: call it off the async runtime.
    pub fn open(path: &Path, retention: LogRetention) -> Result<ReportStore, ReportError> {
        Self::open_with_clock(path, retention, Clock::default())
    }

    fn open_with_clock(
        path: &Path,
        retention: LogRetention,
        clock: Clock,
    ) -> Result<ReportStore, ReportError> {
        let database = tables::open_db(path)?;
        let (tip, last_stored) = read::tip(&database)?;
        let db = Arc::new(Db {
            path: path.to_owned(),
            slot: RwLock::new(Some(Arc::new(database))),
            closed: AtomicBool::new(false),
        });
        let (stored, _) = watch::channel(tip);
        let stored = Arc::new(stored);
        let (tx, rx) = mpsc::channel(MAX_BATCH);
        // The writer's timer runs on a runtime of its own, so the thread needs no other.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| ReportError::Storage(format!("cannot start the writer's timer: {e}")))?;
        let commits = Arc::new(AtomicU64::new(0));
        let writer = writer::Writer::new(
            rx,
            db.clone(),
            stored.clone(),
            retention,
            clock,
            last_stored,
            commits.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("skerry-reports".into())
            .spawn(move || writer.run(&runtime))
            .map_err(|e| ReportError::Storage(format!("cannot start the writer thread: {e}")))?;
        Ok(ReportStore {
            tx,
            thread: Arc::new(Mutex::new(Some(thread))),
            db,
            stored,
            commits,
        })
    }

    /// Stores one node's entries of `epoch`, skipping duplicates: per (node, lane) the store
    /// keeps (epoch, highest seq stored); an entry is new when its epoch differs from the
    /// stored one (a rebuilt journal: the watermark restarts) or its seq is higher. New and
    /// duplicate entries alike are in `acked` once this returns Ok (durable).
    pub async fn ingest(
        &self,
        node: NodeId,
        epoch: u64,
        entries: Vec<OutboxEntry>,
    ) -> Result<Ingested, ReportError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Ingest(Box::new(IngestJob {
                node,
                epoch,
                entries,
                reply,
            })))
            .await
            .map_err(|_| ReportError::Stopped)?;
        rx.await.map_err(|_| ReportError::Stopped)?
    }

    /// The latest replica status of every node (what `Complete`/`Replica` entries said), for
    /// the hub to load at start. Blocking (a read transaction).
    pub fn replica_statuses(&self) -> Result<BTreeMap<NodeId, Vec<ReplicaStatus>>, ReportError> {
        read::replica_statuses(&*self.db.get()?)
    }

    /// A page of log lines. Blocking (a read transaction): call it off the async runtime.
    pub fn query(&self, q: &LogQuery) -> Result<LogPage, ReportError> {
        read::query(&*self.db.get()?, q)
    }

    /// Like [`ReportStore::query`], but the page also stops once its lines' texts take
    /// `max_bytes` (at least one line, however long); the flag says whether it stopped for
    /// that, with more lines to read (`next` is then the last line's cursor). Blocking.
    pub fn query_bounded(
        &self,
        q: &LogQuery,
        max_bytes: usize,
    ) -> Result<(LogPage, bool), ReportError> {
        read::query_bounded(&*self.db.get()?, q, max_bytes)
    }

    /// The runs of a job (or of every job of an instance). Blocking (a read transaction).
    pub fn job_runs(&self, q: &jobs::RunQuery) -> Result<Vec<jobs::StoredRun>, ReportError> {
        jobs::query(&*self.db.get()?, q)
    }

    /// Whether anything (lines or drops) is stored for `instance`. Blocking.
    pub fn has_instance(&self, instance: &Name) -> Result<bool, ReportError> {
        read::has_instance(&*self.db.get()?, instance)
    }

    /// Wakes followers when lines are stored: the value is the last cursor stored.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.stored.subscribe()
    }

    /// Like [`ReportStore::replica_statuses`], with the time each was stored (`None` for
    /// records an older build wrote). Blocking (a read transaction).
    pub fn replica_reports(&self) -> Result<BTreeMap<NodeId, Vec<StoredStatus>>, ReportError> {
        read::replica_reports(&*self.db.get()?)
    }

    /// Applies the retention now, by age and by size.
    pub async fn expire(&self) -> Result<Removed, ReportError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Expire(reply))
            .await
            .map_err(|_| ReportError::Stopped)?;
        rx.await.map_err(|_| ReportError::Stopped)?
    }

    /// Finishes the requests already queued, stops the writer, waits for it and releases
    /// the file. Later requests answer [`ReportError::Stopped`]. Blocking: call it off the
    /// async runtime.
    pub fn close(&self) {
        let _ = self.tx.blocking_send(Msg::Stop);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
        self.db.closed.store(true, Ordering::SeqCst);
        drop(self.db.slot.write().take());
    }

    /// Write transactions committed since the store opened (for metrics, and for tests that
    /// check that concurrent requests share them).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }
}
