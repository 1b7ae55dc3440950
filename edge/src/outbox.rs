//! The outbox sender: what the journal's outbox holds goes to the cloud while the link is
//! up, control before logs, logs within the profile's rate.
//!
//! The outbox itself (entries, coalescing, the log quota) is in the journal
//! ([`Journal::outbox_push`]); this is the part that decides what to send and when. It
//! is sans-IO apart from journal reads: it hands out encoded frames and takes the cloud's
//! acknowledgements, and the agent's outbox task (`agent/outbox.rs`) sends the frames and
//! deletes the acknowledged entries from the journal.
//!
//! - Each lane is sent in `seq` order. At most [`CONTROL_WINDOW`] control frames and
//!   [`LOGS_WINDOW`] log frames are in flight (sent, not acknowledged), so a burst of logs
//!   never queues ahead of a status change for more than one frame or two.
//! - Log frames go only when no control entry waits, and within a token bucket of
//!   `agent.log_rate` bytes per second (the profile's), so log shipping never starves the
//!   sync and status traffic on a thin link.
//! - On a link that chose to linger ([`Sender::with_linger`], from the profile's
//!   `link`: `skerry_shared::profile::Link::tuning`), a lane whose queued entries do not
//!   fill a frame (half of [`FRAME_BUDGET`], or `agent.event_batch` entries) waits up to
//!   its linger from when it was first seen waiting, so entries go in fewer, fuller
//!   frames; a full frame goes at once.
//! - After a reconnect, or when an acknowledgement is overdue ([`RESEND_AFTER`]),
//!   everything not acknowledged is sent again; the cloud drops what it already stored
//!   (by epoch and seq) and acknowledges it again.

use std::collections::VecDeque;
use std::time::Duration;

use skerry_shared::frame::{self, MAX_FRAME_BYTES, UpFrame};
use skerry_shared::outbox::{Lane, OutboxEntry};
use tokio::time::Instant;

use crate::journal::{Journal, JournalError};

/// Control frames in flight at most.
pub const CONTROL_WINDOW: usize = 4;
/// Log frames in flight at most.
pub const LOGS_WINDOW: usize = 2;
/// Entries are read for a frame up to this many bytes (the frame's own header aside).
pub const FRAME_BUDGET: usize = MAX_FRAME_BYTES - 4096;
/// Unacknowledged frames are sent again after this long.
pub const RESEND_AFTER: Duration = Duration::from_secs(30);

fn lane_index(lane: Lane) -> usize {
    match lane {
        Lane::Control => 0,
        Lane::Logs => 1,
    }
}

/// A frame sent and not yet acknowledged.
#[derive(Debug)]
struct InFlight {
    sent_at: Instant,
    seqs: Vec<u64>,
}

/// Bytes per second, with a burst of one second (and at least one frame).
#[derive(Debug)]
struct Bucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u64, now: Instant) -> Self {
        let rate = rate.max(1) as f64;
        let capacity = rate.max(MAX_FRAME_BYTES as f64);
        Self {
            rate,
            capacity,
            tokens: capacity,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.capacity);
        self.at = now;
    }

    /// Takes `n` tokens if there are that many.
    fn take(&mut self, n: usize, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= n as f64 {
            self.tokens -= n as f64;
            true
        } else {
            false
        }
    }

    /// When `n` tokens will be there.
    fn ready_at(&self, n: usize) -> Instant {
        let missing = (n as f64 - self.tokens).max(0.0);
        // Rounded up to the next millisecond, so the tokens are there at that time.
        self.at + Duration::from_secs_f64(missing / self.rate) + Duration::from_millis(1)
    }
}

/// What the sender did in one call of [`Sender::frames`].
#[derive(Debug, Default)]
pub struct Frames {
    /// Encoded up frames, in the order to send them.
    pub frames: Vec<Vec<u8>>,
    /// Log entries wait for the rate limit until then: call again at that time.
    pub wake_at: Option<Instant>,
}

/// Sends the outbox of one journal epoch.
#[derive(Debug)]
pub struct Sender {
    epoch: u64,
    /// Per lane, the highest seq handed out on this connection: reads start after it.
    sent: [u64; 2],
    in_flight: [VecDeque<InFlight>; 2],
    bucket: Bucket,
    /// Entries per frame at most (the profile's `agent.event_batch`).
    max_entries: usize,
    /// Per lane, how long entries that do not fill a frame wait (zero: not at all).
    linger: [Duration; 2],
    /// Per lane, since when entries have waited for their linger.
    waiting: [Option<Instant>; 2],
}

impl Sender {
    /// A sender for the outbox of journal `epoch`, shipping logs at `log_rate` bytes per
    /// second at most, `max_entries` entries per frame at most.
    pub fn new(epoch: u64, log_rate: u64, max_entries: usize) -> Self {
        Self {
            epoch,
            sent: [0; 2],
            in_flight: [VecDeque::new(), VecDeque::new()],
            bucket: Bucket::new(log_rate, Instant::now()),
            max_entries: max_entries.max(1),
            linger: [Duration::ZERO; 2],
            waiting: [None; 2],
        }
    }

    /// Lets replica reports (`control`) and log batches (`logs`) that do not fill a
    /// frame wait that long for more (the link type's [`LinkTuning`]).
    ///
    /// [`LinkTuning`]: skerry_shared::profile::LinkTuning
    pub fn with_linger(mut self, control: Duration, logs: Duration) -> Self {
        self.linger = [control, logs];
        self
    }

    /// When a frame of `entries` entries and `bytes` bytes of `lane` may go: `None` now,
    /// or the time its linger ends.
    fn held_until(
        &mut self,
        lane: Lane,
        entries: usize,
        bytes: usize,
        now: Instant,
    ) -> Option<Instant> {
        let i = lane_index(lane);
        let linger = self.linger[i];
        if linger.is_zero() || entries >= self.max_entries || bytes >= FRAME_BUDGET / 2 {
            return None;
        }
        let due = *self.waiting[i].get_or_insert(now) + linger;
        (now < due).then_some(due)
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The link is up again: everything not acknowledged is sent again.
    pub fn reconnected(&mut self) {
        self.sent = [0; 2];
        self.in_flight.iter_mut().for_each(VecDeque::clear);
    }

    /// Frames sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight.iter().map(VecDeque::len).sum()
    }

    /// The frames to send now (call it while the link is up).
    pub fn frames(&mut self, journal: &dyn Journal, now: Instant) -> Result<Frames, JournalError> {
        let overdue = self
            .in_flight
            .iter()
            .flatten()
            .any(|f| now.saturating_duration_since(f.sent_at) >= RESEND_AFTER);
        if overdue {
            tracing::info!("outbox acknowledgements are overdue; sending again");
            self.reconnected();
        }
        let mut out = Frames::default();
        // Control first, within its window.
        let mut control_waits = false;
        while self.in_flight[0].len() < CONTROL_WINDOW {
            let entries =
                journal.outbox_read(Lane::Control, self.sent[0], self.max_entries, FRAME_BUDGET)?;
            let Some(bytes) = self.encode(&entries) else {
                break;
            };
            if let Some(due) = self.held_until(Lane::Control, entries.len(), bytes.len(), now) {
                out.wake_at = Some(due);
                control_waits = true;
                break;
            }
            self.hand_out(Lane::Control, &entries, now);
            out.frames.push(bytes);
        }
        if !control_waits && self.in_flight[0].len() >= CONTROL_WINDOW {
            control_waits = !journal
                .outbox_read(Lane::Control, self.sent[0], 1, FRAME_BUDGET)?
                .is_empty();
        }
        // Then logs, when no control entry waits, within the rate.
        while !control_waits && self.in_flight[1].len() < LOGS_WINDOW {
            let entries =
                journal.outbox_read(Lane::Logs, self.sent[1], self.max_entries, FRAME_BUDGET)?;
            let Some(bytes) = self.encode(&entries) else {
                break;
            };
            if let Some(due) = self.held_until(Lane::Logs, entries.len(), bytes.len(), now) {
                out.wake_at = Some(out.wake_at.map_or(due, |w| w.min(due)));
                break;
            }
            if !self.bucket.take(bytes.len(), now) {
                out.wake_at = Some(self.bucket.ready_at(bytes.len()));
                break;
            }
            self.hand_out(Lane::Logs, &entries, now);
            out.frames.push(bytes);
        }
        Ok(out)
    }

    fn encode(&self, entries: &[OutboxEntry]) -> Option<Vec<u8>> {
        if entries.is_empty() {
            return None;
        }
        let mut n = entries.len();
        loop {
            let frame = UpFrame::Outbox {
                epoch: self.epoch,
                entries: entries[..n].to_vec(),
            };
            match frame::encode_up(&frame) {
                Ok(bytes) => return Some(bytes),
                Err(e) if n > 1 => {
                    tracing::debug!(error = %e, entries = n, "outbox frame too large; fewer entries");
                    n = n.div_ceil(2);
                }
                Err(e) => {
                    tracing::error!(error = %e, seq = entries[0].seq, "an outbox entry does not fit a frame");
                    return None;
                }
            }
        }
    }

    fn hand_out(&mut self, lane: Lane, entries: &[OutboxEntry], now: Instant) {
        let i = lane_index(lane);
        self.waiting[i] = None;
        if let Some(last) = entries.last() {
            self.sent[i] = self.sent[i].max(last.seq);
        }
        self.in_flight[i].push_back(InFlight {
            sent_at: now,
            seqs: entries.iter().map(|e| e.seq).collect(),
        });
    }

    /// The cloud stored these entries. Returns the seqs to delete from the journal (none
    /// for an acknowledgement of another epoch).
    pub fn acked(&mut self, epoch: u64, seqs: &[u64]) -> Vec<u64> {
        if epoch != self.epoch {
            tracing::warn!(
                epoch,
                ours = self.epoch,
                "an outbox acknowledgement for another journal epoch; ignored"
            );
            return Vec::new();
        }
        let acked: std::collections::BTreeSet<u64> = seqs.iter().copied().collect();
        for lane in &mut self.in_flight {
            lane.retain_mut(|f| {
                f.seqs.retain(|s| !acked.contains(s));
                !f.seqs.is_empty()
            });
        }
        seqs.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use skerry_shared::clock::Timestamp;
    use skerry_shared::ids::Name;
    use skerry_shared::outbox::{LogBatch, LogChunk, LogSource, LogStream, OutboxBody};
    use skerry_shared::planner::ReplicaKey;

    use super::*;
    use crate::journal::{MemoryJournal, OutboxPush};

    fn n(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    fn status(i: u32) -> OutboxBody {
        OutboxBody::Replica {
            key: ReplicaKey::new(&n("w"), &n(&format!("c{i}")), 0),
            status: None,
        }
    }

    fn logs(first: u64, lines: usize, width: usize) -> OutboxBody {
        OutboxBody::Logs(
            LogBatch::pack(&[LogChunk {
                source: LogSource {
                    instance: n("w"),
                    component: n("web"),
                    replica: 0,
                    stream: LogStream::File("app.log".into()),
                },
                first_line: first,
                time: Timestamp(0),
                // Incompressible enough: every line differs.
                lines: (0..lines)
                    .map(|i| {
                        format!(
                            "{:0width$x}",
                            (first + i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                        )
                    })
                    .collect(),
                pieces: Default::default(),
            }])
            .unwrap(),
        )
    }

    fn push(j: &MemoryJournal, bodies: Vec<OutboxBody>) {
        j.outbox_push(
            &OutboxPush {
                bodies,
                cursors: Vec::new(),
            },
            u64::MAX,
        )
        .unwrap();
    }

    fn decode(frame: &[u8]) -> Vec<OutboxEntry> {
        match frame::decode_up(frame).unwrap() {
            UpFrame::Outbox { entries, .. } => entries,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn control_goes_before_logs_and_logs_keep_to_their_window() {
        let j = Arc::new(MemoryJournal::new());
        push(
            &j,
            vec![logs(1, 10, 16), logs(11, 10, 16), logs(21, 10, 16)],
        );
        push(&j, vec![status(1), status(2)]);
        let mut s = Sender::new(j.load().unwrap().epoch, 1 << 30, 1);
        let now = Instant::now();
        let out = s.frames(j.as_ref(), now).unwrap();
        let lanes: Vec<Lane> = out
            .frames
            .iter()
            .map(|f| decode(f)[0].body.lane())
            .collect();
        assert_eq!(
            lanes,
            vec![Lane::Control, Lane::Control, Lane::Logs, Lane::Logs]
        );
        // Nothing more until something is acknowledged.
        assert!(s.frames(j.as_ref(), now).unwrap().frames.is_empty());
        let first_logs = decode(&out.frames[2]);
        let seqs: Vec<u64> = first_logs.iter().map(|e| e.seq).collect();
        let epoch = s.epoch();
        assert_eq!(s.acked(epoch, &seqs), seqs);
        j.outbox_ack(&seqs).unwrap();
        let more = s.frames(j.as_ref(), now).unwrap();
        assert_eq!(more.frames.len(), 1);
        assert_eq!(decode(&more.frames[0])[0].body.lane(), Lane::Logs);
    }

    #[test]
    fn logs_wait_while_control_is_waiting() {
        let j = Arc::new(MemoryJournal::new());
        push(&j, (0..10).map(status).collect());
        push(&j, vec![logs(1, 10, 16)]);
        let mut s = Sender::new(j.load().unwrap().epoch, 1 << 30, 1);
        let out = s.frames(j.as_ref(), Instant::now()).unwrap();
        assert_eq!(out.frames.len(), CONTROL_WINDOW);
        assert!(
            out.frames
                .iter()
                .all(|f| decode(f)[0].body.lane() == Lane::Control)
        );
    }

    #[test]
    fn the_rate_limit_holds_logs_back_and_says_when_to_come_back() {
        let j = Arc::new(MemoryJournal::new());
        for k in 0..64u64 {
            push(&j, vec![logs(k * 2000 + 1, 2000, 32)]);
        }
        // 100 KiB/s: a burst of one frame's worth (256 KiB), then the rate.
        let mut s = Sender::new(j.load().unwrap().epoch, 100 * 1024, 1);
        let now = Instant::now();
        let mut sent = 0;
        let held = loop {
            let out = s.frames(j.as_ref(), now).unwrap();
            if out.frames.is_empty() {
                break out;
            }
            // Acknowledge all, so only the rate holds the rest back.
            for f in &out.frames {
                sent += f.len();
                let seqs: Vec<u64> = decode(f).iter().map(|e| e.seq).collect();
                let epoch = s.epoch();
                s.acked(epoch, &seqs);
                j.outbox_ack(&seqs).unwrap();
            }
        };
        assert!(sent > 0 && sent <= MAX_FRAME_BYTES, "{sent}");
        let wake = held.wake_at.unwrap();
        assert!(wake > now);
        let later = s.frames(j.as_ref(), wake).unwrap();
        assert_eq!(later.frames.len(), 1);
    }

    #[test]
    fn a_lingering_link_sends_fewer_fuller_frames() {
        let j = Arc::new(MemoryJournal::new());
        let (report_linger, log_linger) = (Duration::from_secs(2), Duration::from_secs(30));
        let mut s =
            Sender::new(j.load().unwrap().epoch, 1 << 30, 8).with_linger(report_linger, log_linger);
        let t0 = Instant::now();
        push(&j, vec![logs(1, 10, 16)]);
        let out = s.frames(j.as_ref(), t0).unwrap();
        assert!(out.frames.is_empty());
        assert_eq!(out.wake_at, Some(t0 + log_linger));
        // More lines later wait for the same deadline, counted from the first.
        push(&j, vec![logs(11, 10, 16)]);
        let t1 = t0 + Duration::from_secs(10);
        let out = s.frames(j.as_ref(), t1).unwrap();
        assert!(out.frames.is_empty());
        assert_eq!(out.wake_at, Some(t0 + log_linger));
        // Then one frame carries both batches.
        let out = s.frames(j.as_ref(), t0 + log_linger).unwrap();
        assert_eq!(out.frames.len(), 1);
        assert_eq!(decode(&out.frames[0]).len(), 2);

        // Reports wait their own (shorter) linger, and logs wait behind them.
        push(&j, vec![status(1)]);
        push(&j, vec![logs(21, 10, 16)]);
        let t2 = t0 + Duration::from_secs(40);
        let out = s.frames(j.as_ref(), t2).unwrap();
        assert!(out.frames.is_empty());
        assert_eq!(out.wake_at, Some(t2 + report_linger));
        push(&j, vec![status(2)]);
        let out = s.frames(j.as_ref(), t2 + report_linger).unwrap();
        assert_eq!(
            out.frames.len(),
            1,
            "both reports in one frame; the log batch lingers"
        );
        assert_eq!(decode(&out.frames[0]).len(), 2);
        assert_eq!(out.wake_at, Some(t2 + report_linger + log_linger));

        // A full frame goes at once.
        push(&j, (10..18).map(status).collect());
        let out = s.frames(j.as_ref(), t2 + report_linger).unwrap();
        assert_eq!(out.frames.len(), 1);
        assert_eq!(decode(&out.frames[0]).len(), 8);

        // Without a linger (ethernet, wifi) nothing waits.
        let j = Arc::new(MemoryJournal::new());
        push(&j, vec![status(1), logs(1, 10, 16)]);
        let mut s = Sender::new(j.load().unwrap().epoch, 1 << 30, 8);
        assert_eq!(s.frames(j.as_ref(), t0).unwrap().frames.len(), 2);
    }

    #[test]
    fn a_reconnect_or_an_overdue_ack_sends_everything_again() {
        let j = Arc::new(MemoryJournal::new());
        push(&j, vec![status(1), status(2)]);
        let mut s = Sender::new(j.load().unwrap().epoch, 1 << 30, 8);
        let now = Instant::now();
        assert_eq!(s.frames(j.as_ref(), now).unwrap().frames.len(), 1);
        assert!(s.frames(j.as_ref(), now).unwrap().frames.is_empty());
        s.reconnected();
        assert_eq!(s.frames(j.as_ref(), now).unwrap().frames.len(), 1);
        let again = s.frames(j.as_ref(), now + RESEND_AFTER).unwrap();
        assert_eq!(again.frames.len(), 1);
        assert_eq!(decode(&again.frames[0]).len(), 2);
        // An ack for another epoch deletes nothing.
        assert!(s.acked(s.epoch() + 1, &[1, 2]).is_empty());
    }
}
