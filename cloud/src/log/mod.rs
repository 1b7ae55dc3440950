//! The event log seam.
//!
//! The engine seals events (sequence numbers, `node_seq`s, the hash chain) and hands them
//! to an [`EventLog`], which must have made them durable when `append` returns. The
//! embedded backend is [`RedbLog`]; a JetStream backend will sit behind the same trait.

mod redb_log;

pub use redb_log::RedbLog;

use std::collections::HashMap;
use std::sync::Arc;

use skerry_shared::event::{ChainError, Event, verify_chain};
use skerry_shared::hash::Digest;
use skerry_shared::ids::NodeId;

/// What can go wrong in a log backend.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("event log storage: {0}")]
    Storage(String),
    #[error("event log entry {seq} does not decode: {reason}")]
    Corrupt { seq: u64, reason: String },
    #[error("append out of order: expected sequence {expected}, got {got}")]
    OutOfOrder { expected: u64, got: u64 },
}

/// A durable, append-only command log.
pub trait EventLog: Send + Sync + 'static {
    /// Appends sealed events in one atomic, durable write. The first event's sequence
    /// number must follow the last one stored.
    fn append(&self, events: &[Arc<Event>]) -> Result<(), LogError>;

    /// Up to `limit` events with sequence numbers after `after_seq`, in order.
    fn read(&self, after_seq: u64, limit: usize) -> Result<Vec<Event>, LogError>;

    /// Up to `limit` events addressed to `node` with `node_seq` after `after_node_seq`,
    /// in `node_seq` order.
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
