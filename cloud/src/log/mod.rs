//! The event log seam.
//!
//! The engine seals events (sequence numbers, `node_seq`s, the hash chain) and hands them
//! to an [`EventLog`], which must have made them durable when `append` returns. The
//! embedded backend is [`RedbLog`]; a JetStream backend will sit behind the same trait.
//! Which backend runs is chosen in one place, [`open`] with a [`LogBackend`].
//!
//! # Layout
//! - this file: the [`EventLog`] trait (what every backend must provide), [`LogError`],
//!   and [`walk`], the checked read of the whole log.
//! - `backend`: [`LogBackend`] and [`open`], the one factory of backends.
//! - `redb_log`: [`RedbLog`], the embedded backend.

mod backend;
mod redb_log;

pub use backend::{LogBackend, open};
pub use redb_log::RedbLog;

use std::collections::HashMap;
use std::sync::Arc;

use skerry_shared::event::{ChainError, Event, verify_chain};
use skerry_shared::hash::Digest;
use skerry_shared::ids::NodeId;

/// What can go wrong in a log backend.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The storage failed (a write or read error, a full disk, a file in the wrong
    /// format). Not retryable as such: the engine rebuilds its projections from the log.
    #[error("event log storage: {0}")]
    Storage(String),
    #[error("event log entry {seq} does not decode: {reason}")]
    Corrupt { seq: u64, reason: String },
    #[error("append out of order: expected sequence {expected}, got {got}")]
    OutOfOrder { expected: u64, got: u64 },
    /// The backend is out of reach for now (for a networked backend: no quorum, a timeout,
    /// a lost connection), and the call may be tried again as it was: a read changed
    /// nothing, and an append either stored the whole batch or none of it, which the
    /// backend tells apart on the retry (see [`EventLog`]). The embedded backend never
    /// returns it.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
}

impl LogError {
    /// The same call may succeed if tried again later ([`LogError::Unavailable`]); every
    /// other error stays until something changes (the disk, the file, the caller).
    pub fn is_retryable(&self) -> bool {
        matches!(self, LogError::Unavailable(_))
    }
}

/// A durable, append-only command log.
///
/// # What a backend must provide
/// - **Atomic batch append.** [`EventLog::append`] stores all the events it is given or
///   none of them, and returns `Ok` only once they are durable (the embedded backend: one
///   redb write transaction with `Durability::Immediate`, one fsync per batch; JetStream:
///   every message acknowledged by the stream's quorum). The engine batches concurrent
///   commands into one append (group commit) and answers them after it returns.
/// - **Sequence rules.** Events carry their own sequence numbers, sealed by the engine:
///   the first event of a batch must follow the last one stored (1 for an empty log) and
///   the rest follow without a gap; anything else is [`LogError::OutOfOrder`], and nothing
///   is stored. A backend checks this at the store, not only in memory, so that two
///   writers cannot both append the same sequence number (JetStream: the expected last
///   sequence on each publish). [`EventLog::last_seq`] is the last stored sequence number.
/// - **Retries.** A backend that can lose its connection returns
///   [`LogError::Unavailable`] for a call that may be retried as it was; a retried append
///   must then either find the whole batch stored or store it whole, never half or twice.
/// - **The per-node index.** Each event names the nodes it concerns with their `node_seq`
///   (`Event::node_seqs`). [`EventLog::read_node`] reads a node's events by `node_seq`
///   without scanning the whole log (the embedded backend: a `(node, node_seq) -> seq`
///   table written in the same transaction as the events; JetStream: a subject per node,
///   or an index kept beside the stream, written before `append` returns). A node's
///   catch-up and the sync sessions depend on it.
/// - **Ordered, bounded reads.** Reads return events in order (sequence number, or
///   `node_seq` for a node), at most `limit` of them; the `*_bounded` reads also stop once
///   about `max_bytes` of stored events are read (always at least one event), so a page
///   stays small whatever the manifests weigh. The defaults read one event at a time; a
///   backend should override them with one read.
/// - **Integrity.** An event that does not decode is [`LogError::Corrupt`] with its
///   sequence number, never skipped; the hash chain itself is checked above the backend
///   ([`walk`]).
pub trait EventLog: Send + Sync + 'static {
    /// Appends sealed events in one atomic, durable write. The first event's sequence
    /// number must follow the last one stored.
    fn append(&self, events: &[Arc<Event>]) -> Result<(), LogError>;

    /// Up to `limit` events with sequence numbers after `after_seq`, in order.
    fn read(&self, after_seq: u64, limit: usize) -> Result<Vec<Event>, LogError>;

    /// Up to `limit` events addressed to `node` with `node_seq` after `after_node_seq`,
    /// in `node_seq` order (through the per-node index).
    fn read_node(
        &self,
        node: NodeId,
        after_node_seq: u64,
        limit: usize,
    ) -> Result<Vec<Event>, LogError>;

    /// The sequence number of the last event (0 when empty).
    fn last_seq(&self) -> Result<u64, LogError>;

    /// Like [`EventLog::read`], but stops once the events read take `max_bytes` or more
    /// as stored (always at least one event, however large), so that a page of events
    /// with large manifests stays small. The default reads one event at a time.
    fn read_bounded(
        &self,
        after_seq: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Event>, LogError> {
        bounded(
            limit,
            max_bytes,
            after_seq,
            |after| self.read(after, 1),
            |e| e.seq,
        )
    }

    /// Like [`EventLog::read_node`], bounded by bytes as [`EventLog::read_bounded`] is.
    fn read_node_bounded(
        &self,
        node: NodeId,
        after_node_seq: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Event>, LogError> {
        bounded(
            limit,
            max_bytes,
            after_node_seq,
            |after| self.read_node(node, after, 1),
            |e| e.node_seq_for(node).unwrap_or(u64::MAX),
        )
    }
}

/// Reads one event at a time through `read_one` until `limit` events or `max_bytes` of
/// their encoding (the default of the bounded reads).
fn bounded(
    limit: usize,
    max_bytes: usize,
    mut after: u64,
    read_one: impl Fn(u64) -> Result<Vec<Event>, LogError>,
    cursor: impl Fn(&Event) -> u64,
) -> Result<Vec<Event>, LogError> {
    let mut out = Vec::new();
    let mut bytes = 0;
    while out.len() < limit && bytes < max_bytes {
        let Some(e) = read_one(after)?.into_iter().next() else {
            break;
        };
        after = cursor(&e);
        bytes += postcard::to_stdvec(&e).map_or(0, |v| v.len());
        out.push(e);
    }
    Ok(out)
}

/// Why a walk of the log stopped.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Chain(#[from] ChainError),
}

/// How far a walk of the log got: the events it checked and the hash of the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walked {
    pub events: u64,
    pub head: Digest,
}

/// Reads the whole log in order, checking the hash chain (sequence numbers, hashes and
/// each node's `node_seq`) page by page, and hands each checked event to `visit`. On a
/// fault it returns how far it got, with the error.
pub fn walk(
    log: &dyn EventLog,
    mut visit: impl FnMut(&Event),
) -> Result<Walked, (Walked, WalkError)> {
    const PAGE: usize = 4096;
    let mut node_next = HashMap::new();
    let mut at = Walked {
        events: 0,
        head: Digest::ZERO,
    };
    loop {
        let page = log.read(at.events, PAGE).map_err(|e| (at, e.into()))?;
        if page.is_empty() {
            return Ok(at);
        }
        let (next, head) = match verify_chain(&page, at.events + 1, at.head, &mut node_next) {
            Ok(v) => v,
            Err(e) => {
                // Events before the faulty one checked out; say how far that was.
                let good = e.seq().saturating_sub(1);
                if let Some(last_good) = page.iter().take_while(|x| x.seq <= good).last() {
                    at = Walked {
                        events: last_good.seq,
                        head: last_good.hash,
                    };
                }
                return Err((at, e.into()));
            }
        };
        page.iter().for_each(&mut visit);
        at = Walked {
            events: next - 1,
            head,
        };
    }
}
