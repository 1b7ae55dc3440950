//! The outbox's rules, written once for both journals.
//!
//! The agent queues what it has to tell the cloud in its journal ([`Journal::outbox_push`])
//! and sends it when the link is up ([`Journal::outbox_read`]); the cloud acknowledges by
//! `seq` and the agent deletes what was acknowledged ([`Journal::outbox_ack`]). The log
//! collector's cursors are stored in the push's transaction, so a batch of lines is queued
//! exactly when its cursor moves past them: a crash neither loses nor repeats them.
//!
//! The rules, applied by `push` and `ack` here:
//! - every entry inserted gets the next `seq` (from 1; a coalesced entry gets a new one too);
//!   a `seq` is never given twice within the journal's epoch;
//! - a [`OutboxBody::Replica`] deletes the queued `Replica` of the same replica (an index
//!   replica to `seq` finds it);
//! - a [`OutboxBody::Complete`] deletes every queued `Replica` and `Complete`;
//! - a [`OutboxBody::LogsDropped`] merges into the queued one (which is deleted): at most one
//!   is queued at any time;
//! - a [`OutboxBody::LogsWaiting`] deletes the queued one (it says all that waits now): at
//!   most one is queued;
//! - a [`OutboxBody::JobRun`] is appended (never coalesced: each run is reported);
//! - a [`OutboxBody::Logs`] is appended; then, while the queued log entries take more than
//!   the quota (their encoded size), the oldest are dropped (the new one too, when it alone
//!   is over) and counted in the queued `LogsDropped`, and in the lifetime totals.
//!
//! - then, while the control entries (everything but log batches) take more than the
//!   outbox quota (`agent.outbox_quota`, [`Journal::set_outbox_quota`]), what can grow
//!   gives way: first the queued `LogsDropped` is compacted to one span per source (every
//!   count is kept, the line ranges are merged), then, on a push of `Replica` entries,
//!   the oldest `Replica` entries are dropped and counted (`dropped_reports`;
//!   [`Pushed::dropped_reports`] tells the caller,
//!   which then queues a `Complete`: that is the newest state of every replica, so no
//!   replica's latest state is lost); on a push of `JobRun` entries, the oldest
//!   `JobRun` entries are dropped and counted (`dropped_runs`, which the job runner puts
//!   in its next run report). A `Complete` and one `LogsDropped` always stay: the
//!   quota is the larger of `outbox_quota` and those two.
//!
//! The encoded size of an entry is the postcard size of its [`OutboxBody`]: what is stored.
//!
//! Each journal gives the rules its storage as an `OutboxStore` (primitive lookups,
//! inserts and deletes, inside its write transaction), so the coalescing, the indexes and
//! the counters are the same on [`RedbJournal`](super::RedbJournal) and
//! [`MemoryJournal`](super::MemoryJournal).
//!
//! [`Journal::outbox_push`]: super::Journal::outbox_push
//! [`Journal::outbox_read`]: super::Journal::outbox_read
//! [`Journal::outbox_ack`]: super::Journal::outbox_ack
//! [`Journal::set_outbox_quota`]: super::Journal::set_outbox_quota

use std::collections::BTreeMap;

use skerry_shared::outbox::{Lane, LogBatch, LogSource, LogSpan, LogsDropped, OutboxBody};
use skerry_shared::planner::ReplicaKey;

use super::JournalError;

/// What `Journal::outbox_push` queues in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxPush {
    pub bodies: Vec<OutboxBody>,
    /// The log collector's cursors, stored in the same transaction: `Some` sets, `None`
    /// deletes.
    pub cursors: Vec<(String, Option<Vec<u8>>)>,
}

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pushed {
    /// The seq given to each body, in order (a coalesced body gets a new seq too).
    pub seqs: Vec<u64>,
    /// Log batches this push dropped for the quota (empty when none).
    pub dropped: LogsDropped,
    /// Replica reports this push dropped for the outbox quota (0 when none): the caller
    /// queues a `Complete` after it, so the newest state of each replica still goes.
    pub dropped_reports: u64,
    /// Job run reports this push dropped for the outbox quota (0 when none): the job
    /// runner says so in its next run report.
    pub dropped_runs: u64,
}

/// What the outbox holds, and what it dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxStats {
    pub control_entries: u64,
    pub log_entries: u64,
    /// Encoded bytes of the queued log entries (what the quota counts).
    pub log_bytes: u64,
    /// The seq the next entry gets.
    pub next_seq: u64,
    /// Since the journal was created: lines and batches dropped for the quota.
    pub dropped_lines: u64,
    pub dropped_batches: u64,
    /// Encoded bytes of the queued control entries (what the outbox quota counts).
    pub control_bytes: u64,
    /// Since the journal was created: replica reports dropped for the outbox quota (each
    /// followed by a complete report).
    pub dropped_reports: u64,
    /// Since the journal was created: job run reports dropped for the outbox quota.
    pub dropped_runs: u64,
}

/// The counters an outbox keeps beside its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counters {
    /// The seq the next entry gets (from 1).
    pub next_seq: u64,
    /// Encoded bytes of the queued log entries.
    pub log_bytes: u64,
    /// The seq of the queued `Complete`, if one is.
    pub complete: Option<u64>,
    /// The seq of the queued `LogsDropped`, if one is.
    pub dropped: Option<u64>,
    /// The seq of the queued `LogsWaiting`, if one is.
    pub waiting: Option<u64>,
    /// Lifetime totals.
    pub dropped_lines: u64,
    pub dropped_batches: u64,
    /// Encoded bytes of the queued control entries.
    pub control_bytes: u64,
    /// Lifetime total of replica reports dropped for the outbox quota.
    pub dropped_reports: u64,
    /// Lifetime total of job run reports dropped for the outbox quota.
    pub dropped_runs: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            next_seq: 1,
            log_bytes: 0,
            complete: None,
            dropped: None,
            waiting: None,
            dropped_lines: 0,
            dropped_batches: 0,
            control_bytes: 0,
            dropped_reports: 0,
            dropped_runs: 0,
        }
    }
}

impl Counters {
    /// The stats, given how many entries each lane holds.
    pub fn stats(&self, control_entries: u64, log_entries: u64) -> OutboxStats {
        OutboxStats {
            control_entries,
            log_entries,
            log_bytes: self.log_bytes,
            next_seq: self.next_seq,
            dropped_lines: self.dropped_lines,
            dropped_batches: self.dropped_batches,
            control_bytes: self.control_bytes,
            dropped_reports: self.dropped_reports,
            dropped_runs: self.dropped_runs,
        }
    }
}

/// The storage under the rules: what each journal implements, inside one write transaction
/// (an error leaves the transaction to be abandoned: nothing of it is stored).
pub(crate) trait OutboxStore {
    fn counters(&mut self) -> Result<Counters, JournalError>;
    fn set_counters(&mut self, counters: &Counters) -> Result<(), JournalError>;
    /// The seq of the queued `Replica` entry for `key` (the index).
    fn replica(&mut self, key: &ReplicaKey) -> Result<Option<u64>, JournalError>;
    /// Sets (`Some`) or deletes (`None`) the index entry of `key`.
    fn set_replica(&mut self, key: &ReplicaKey, seq: Option<u64>) -> Result<(), JournalError>;
    /// Empties the replica index; gives the seqs it held.
    fn take_replicas(&mut self) -> Result<Vec<u64>, JournalError>;
    /// Stores an entry in `body.lane()`; `encoded` is the postcard of `body`.
    fn insert(&mut self, seq: u64, body: &OutboxBody, encoded: Vec<u8>)
    -> Result<(), JournalError>;
    /// Deletes a control entry; gives its body if it was there.
    fn take_control(&mut self, seq: u64) -> Result<Option<OutboxBody>, JournalError>;
    /// Deletes a log entry; gives its encoded size if it was there.
    fn take_log(&mut self, seq: u64) -> Result<Option<u64>, JournalError>;
    /// Deletes the oldest log entry; gives its seq, encoded size and batch.
    fn take_oldest_log(&mut self) -> Result<Option<(u64, u64, LogBatch)>, JournalError>;
    /// The seqs of the oldest `limit` queued job run reports, oldest first.
    fn oldest_job_runs(&mut self, limit: usize) -> Result<Vec<u64>, JournalError>;
    /// Sets (`Some`) or deletes (`None`) a log cursor.
    fn set_cursor(&mut self, name: &str, value: Option<&[u8]>) -> Result<(), JournalError>;
    /// The error for storage that breaks the rules.
    fn corrupt(&self, reason: String) -> JournalError;
}

/// The postcard of an entry's body: what is stored, and what its size is.
pub(crate) fn encode(body: &OutboxBody) -> Result<Vec<u8>, JournalError> {
    postcard::to_stdvec(body)
        .map_err(|e| JournalError::InvalidEntry(format!("an outbox entry does not encode: {e}")))
}

/// Queues `push.bodies` by the rules, stores `push.cursors`, and applies the log quota
/// and the outbox quota (`control_quota`, bytes of control entries).
pub(crate) fn push(
    store: &mut impl OutboxStore,
    push: &OutboxPush,
    log_quota: u64,
    control_quota: u64,
) -> Result<Pushed, JournalError> {
    // Encoded first: a body that does not encode refuses the push before anything changes.
    let encoded = push
        .bodies
        .iter()
        .map(encode)
        .collect::<Result<Vec<_>, _>>()?;
    let mut c = store.counters()?;
    for (name, value) in &push.cursors {
        store.set_cursor(name, value.as_deref())?;
    }
    let mut seqs = Vec::with_capacity(push.bodies.len());
    for (body, bytes) in push.bodies.iter().zip(encoded) {
        let seq = match body {
            OutboxBody::Replica { key, .. } => {
                if let Some(old) = store.replica(key)? {
                    take_control(store, &mut c, old)?;
                }
                let seq = insert(store, &mut c, body, bytes)?;
                store.set_replica(key, Some(seq))?;
                seq
            }
            OutboxBody::Complete(_) => {
                for old in store.take_replicas()? {
                    take_control(store, &mut c, old)?;
                }
                if let Some(old) = c.complete.take() {
                    take_control(store, &mut c, old)?;
                }
                let seq = insert(store, &mut c, body, bytes)?;
                c.complete = Some(seq);
                seq
            }
            OutboxBody::LogsDropped(d) => queue_dropped(store, &mut c, d.clone())?,
            OutboxBody::LogsWaiting(_) => {
                // Each says all that waits now: the queued one is superseded.
                if let Some(old) = c.waiting.take() {
                    take_control(store, &mut c, old)?;
                }
                let seq = insert(store, &mut c, body, bytes)?;
                c.waiting = Some(seq);
                seq
            }
            OutboxBody::JobRun(_) => insert(store, &mut c, body, bytes)?,
            OutboxBody::Logs(_) => {
                let size = bytes.len() as u64;
                let seq = insert(store, &mut c, body, bytes)?;
                c.log_bytes = c.log_bytes.saturating_add(size);
                seq
            }
        };
        seqs.push(seq);
    }
    let mut dropped = LogsDropped::default();
    while c.log_bytes > log_quota {
        let Some((_, size, batch)) = store.take_oldest_log()? else {
            return Err(store.corrupt(format!(
                "the outbox counts {} bytes of logs and holds none",
                c.log_bytes
            )));
        };
        c.log_bytes = c.log_bytes.saturating_sub(size);
        dropped.add_batch(&batch);
    }
    if dropped.batches > 0 {
        c.dropped_lines = c.dropped_lines.saturating_add(dropped.lines());
        c.dropped_batches = c.dropped_batches.saturating_add(dropped.batches);
        queue_dropped(store, &mut c, dropped.clone())?;
    }
    // Replica reports give way only to a push of reports: its caller (the agent's
    // reporter) queues a complete report after a drop. A push of log batches only
    // compacts the drop count.
    let reports_may_go = push
        .bodies
        .iter()
        .any(|b| matches!(b, OutboxBody::Replica { .. }));
    let dropped_reports = if c.control_bytes > control_quota {
        bound_control(store, &mut c, control_quota, reports_may_go)?
    } else {
        0
    };
    // Then the oldest job run reports, on a push of them.
    let mut dropped_runs = 0;
    if push
        .bodies
        .iter()
        .any(|b| matches!(b, OutboxBody::JobRun(_)))
    {
        while c.control_bytes > control_quota {
            let oldest = store.oldest_job_runs(64)?;
            if oldest.is_empty() {
                break;
            }
            for seq in oldest {
                if c.control_bytes <= control_quota {
                    break;
                }
                if take_control(store, &mut c, seq)?.is_some() {
                    dropped_runs += 1;
                }
            }
        }
        c.dropped_runs = c.dropped_runs.saturating_add(dropped_runs);
    }
    store.set_counters(&c)?;
    Ok(Pushed {
        seqs,
        dropped,
        dropped_reports,
        dropped_runs,
    })
}

/// Makes room in the control lane for the outbox quota (see the module doc): compacts the
/// queued drop count, then drops the oldest `Replica` entries. Gives how many it dropped.
fn bound_control(
    store: &mut impl OutboxStore,
    c: &mut Counters,
    quota: u64,
    reports_may_go: bool,
) -> Result<u64, JournalError> {
    if let Some(old) = c.dropped {
        match take_control(store, c, old)? {
            Some(OutboxBody::LogsDropped(d)) => {
                c.dropped = None;
                queue_dropped(store, c, compact(d))?;
            }
            _ => {
                return Err(store.corrupt(format!("outbox entry {old} should be the drop count")));
            }
        }
    }
    if c.control_bytes <= quota || !reports_may_go {
        return Ok(0);
    }
    let mut queued = store.take_replicas()?;
    queued.sort_unstable();
    let mut dropped = 0;
    for seq in queued {
        if c.control_bytes > quota {
            if take_control(store, c, seq)?.is_some() {
                dropped += 1;
            }
            continue;
        }
        // Kept: back into the index (the entry stays as it is, under its seq).
        match store.take_control(seq)? {
            Some(OutboxBody::Replica { key, status }) => {
                let body = OutboxBody::Replica {
                    key: key.clone(),
                    status,
                };
                let bytes = encode(&body)?;
                store.insert(seq, &body, bytes)?;
                store.set_replica(&key, Some(seq))?;
            }
            _ => {
                return Err(store.corrupt(format!(
                    "the replica index names outbox entry {seq}, which is not a replica report"
                )));
            }
        }
    }
    c.dropped_reports = c.dropped_reports.saturating_add(dropped);
    Ok(dropped)
}

/// The same drops with one span per source: every count kept, the line ranges merged
/// (from the first dropped line of the source, as many lines as were dropped).
fn compact(d: LogsDropped) -> LogsDropped {
    let mut by_source: BTreeMap<LogSource, (u64, u64)> = BTreeMap::new();
    for span in d.spans {
        let e = by_source.entry(span.source).or_insert((span.first_line, 0));
        e.0 = e.0.min(span.first_line);
        e.1 = e.1.saturating_add(span.lines);
    }
    LogsDropped {
        spans: by_source
            .into_iter()
            .map(|(source, (first_line, lines))| LogSpan {
                source,
                first_line,
                lines,
            })
            .collect(),
        bytes: d.bytes,
        batches: d.batches,
    }
}

/// Deletes a control entry and takes its size off the counted bytes.
fn take_control(
    store: &mut impl OutboxStore,
    c: &mut Counters,
    seq: u64,
) -> Result<Option<OutboxBody>, JournalError> {
    let body = store.take_control(seq)?;
    if let Some(b) = &body {
        let size = encode(b).map_or(0, |v| v.len() as u64);
        c.control_bytes = c.control_bytes.saturating_sub(size);
    }
    Ok(body)
}

/// Deletes the entries with these seqs; unknown ones are ignored.
pub(crate) fn ack(store: &mut impl OutboxStore, seqs: &[u64]) -> Result<(), JournalError> {
    let mut c = store.counters()?;
    let before = c;
    for &seq in seqs {
        if let Some(size) = store.take_log(seq)? {
            c.log_bytes = c.log_bytes.saturating_sub(size);
            continue;
        }
        match take_control(store, &mut c, seq)? {
            Some(OutboxBody::Replica { key, .. }) => {
                if store.replica(&key)? == Some(seq) {
                    store.set_replica(&key, None)?;
                }
            }
            Some(OutboxBody::Complete(_)) if c.complete == Some(seq) => c.complete = None,
            Some(OutboxBody::LogsDropped(_)) if c.dropped == Some(seq) => c.dropped = None,
            Some(OutboxBody::LogsWaiting(_)) if c.waiting == Some(seq) => c.waiting = None,
            Some(OutboxBody::Logs(_)) => {
                return Err(store.corrupt(format!(
                    "outbox entry {seq} is a log batch in the control lane"
                )));
            }
            Some(_) | None => {}
        }
    }
    if c != before {
        store.set_counters(&c)?;
    }
    Ok(())
}

/// Decides how many entries of one lane a read returns: at most `max_entries`, and no more
/// than `max_bytes` encoded in all, except that the first entry is always taken.
#[derive(Debug)]
pub(crate) struct ReadLimit {
    max_entries: usize,
    max_bytes: usize,
    entries: usize,
    bytes: usize,
}

impl ReadLimit {
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            max_entries,
            max_bytes,
            entries: 0,
            bytes: 0,
        }
    }

    /// Whether the next entry, of `size` encoded bytes, is taken (then it is counted).
    pub fn admits(&mut self, size: usize) -> bool {
        if self.entries >= self.max_entries {
            return false;
        }
        let bytes = self.bytes.saturating_add(size);
        if self.entries > 0 && bytes > self.max_bytes {
            return false;
        }
        self.entries += 1;
        self.bytes = bytes;
        true
    }
}

fn insert(
    store: &mut impl OutboxStore,
    c: &mut Counters,
    body: &OutboxBody,
    encoded: Vec<u8>,
) -> Result<u64, JournalError> {
    let seq = c.next_seq;
    c.next_seq = seq
        .checked_add(1)
        .ok_or_else(|| store.corrupt("the outbox has used every seq".into()))?;
    if body.lane() == Lane::Control {
        c.control_bytes = c.control_bytes.saturating_add(encoded.len() as u64);
    }
    store.insert(seq, body, encoded)?;
    Ok(seq)
}

/// Queues `d` merged into the queued `LogsDropped` (deleted), under a new seq.
fn queue_dropped(
    store: &mut impl OutboxStore,
    c: &mut Counters,
    d: LogsDropped,
) -> Result<u64, JournalError> {
    let merged = match c.dropped.take() {
        None => d,
        Some(old) => match take_control(store, c, old)? {
            Some(OutboxBody::LogsDropped(mut queued)) => {
                queued.merge(d);
                queued
            }
            other => {
                return Err(store.corrupt(format!(
                    "outbox entry {old} should be the drop count, and is {}",
                    match other {
                        None => "missing",
                        Some(_) => "another entry",
                    }
                )));
            }
        },
    };
    let body = OutboxBody::LogsDropped(merged);
    let encoded = encode(&body)?;
    let seq = insert(store, c, &body, encoded)?;
    c.dropped = Some(seq);
    Ok(seq)
}

/// Checks that a stored entry is in the lane its body belongs to.
pub(crate) fn check_lane(
    lane: Lane,
    seq: u64,
    body: &OutboxBody,
    corrupt: impl FnOnce(String) -> JournalError,
) -> Result<(), JournalError> {
    if body.lane() == lane {
        Ok(())
    } else {
        Err(corrupt(format!(
            "outbox entry {seq} is stored in the {} lane and belongs in the {} lane",
            lane.as_str(),
            body.lane().as_str()
        )))
    }
}
