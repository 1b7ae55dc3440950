//! The agent's disk budget: the profile's `disk` bounds what the agent itself stores in
//! its data directory.
//!
//! What the agent stores is everything under its data directory except the apps' own
//! files (`logs/`, the host side of `log_dir`s, and `process/`, the state, output and
//! storage of `exec` components): its journal (`journal.redb`, which holds the events, the
//! outbox and the queued log batches), its own log (`agent.log` and two rotations, about
//! 3 MiB at most), its identity, and damaged journals set aside. [`stored_bytes`] adds
//! them up.
//!
//! [`DiskBudget`] keeps that within the budget: `disk` less a headroom of an eighth of
//! it (at least 4 MiB: what one collection round and one step of the journal's file may
//! add before the next look). Once the stored bytes pass it, queued log batches give way
//! first: the journal's log ceiling ([`Journal::set_log_ceiling`]) is set to what is
//! queued less what is over, so each new batch pushes out the oldest ones (dropped and
//! counted like drops for `agent.log_quota`, and reported to the cloud); every further
//! growth of the stored bytes lowers the ceiling again. The journal's file does not shrink
//! when entries go (redb reuses the freed pages), so the ceiling stays until the stored
//! bytes are well below the budget again. The other parts are bounded on their own: the
//! control lane by `agent.outbox_quota`, the events by the journal's retention, the own
//! log by its rotation; a disk that is really full is survived as
//! `docs/reliability.md` describes.
//!
//! [`Journal::set_log_ceiling`]: crate::journal::Journal::set_log_ceiling

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::journal::Journal;

/// The least headroom below `disk`.
pub const MIN_HEADROOM: u64 = 4 * 1024 * 1024;

/// The directories under the data directory that hold the apps' files, not the agent's.
pub const APP_DIRS: [&str; 2] = ["logs", "process"];

/// Keeps what the agent stores within `disk` (see the module doc). Sans-IO: the caller
/// measures ([`stored_bytes`]) and applies the ceiling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskBudget {
    /// Stored bytes at most, before the log ceiling comes down.
    target: u64,
    /// The ceiling on queued log bytes, once the budget was reached.
    ceiling: Option<u64>,
    /// The stored bytes at the last look.
    last: u64,
}

/// What [`DiskBudget::observe`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The ceiling on queued log bytes (`u64::MAX`: none but `agent.log_quota`).
    pub log_ceiling: u64,
    /// The ceiling was set or lowered at this look.
    pub lowered: bool,
}

impl DiskBudget {
    /// The budget for a profile's `disk` bytes.
    pub fn new(disk: u64) -> Self {
        let headroom = (disk / 8).max(MIN_HEADROOM);
        Self {
            target: disk.saturating_sub(headroom),
            ceiling: None,
            last: 0,
        }
    }

    /// Stored bytes at most before log batches give way.
    pub fn target(&self) -> u64 {
        self.target
    }

    /// Looks at `stored` bytes with `queued_logs` bytes of log batches queued, and gives
    /// the ceiling on queued log bytes from now on.
    pub fn observe(&mut self, stored: u64, queued_logs: u64) -> Decision {
        let mut lowered = false;
        if stored > self.target {
            // At the first crossing, all that is over; later, what was added since.
            let over = match self.ceiling {
                None => stored - self.target,
                Some(_) => stored.saturating_sub(self.last.max(self.target)),
            };
            if self.ceiling.is_none() || over > 0 {
                let base = self.ceiling.unwrap_or(u64::MAX).min(queued_logs);
                self.ceiling = Some(base.saturating_sub(over));
                lowered = true;
            }
        } else if stored < self.target - self.target / 4 {
            // Well below again (the journal was set aside, or apps' files went).
            self.ceiling = None;
        }
        self.last = stored;
        Decision {
            log_ceiling: self.ceiling.unwrap_or(u64::MAX),
            lowered,
        }
    }
}

/// The budget applied: looks at the data directory and sets the journal's log ceiling.
pub struct DiskWatch {
    budget: DiskBudget,
    data: PathBuf,
    journal: Arc<dyn Journal>,
}

impl std::fmt::Debug for DiskWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskWatch")
            .field("budget", &self.budget)
            .field("data", &self.data)
            .finish_non_exhaustive()
    }
}

impl DiskWatch {
    /// Keeps what the agent stores under `data` within `disk` bytes.
    pub fn new(disk: u64, data: PathBuf, journal: Arc<dyn Journal>) -> Self {
        Self {
            budget: DiskBudget::new(disk),
            data,
            journal,
        }
    }

    /// One look (before each collection round, so that a round's batches meet the
    /// ceiling).
    pub fn look(&mut self) {
        let stored = stored_bytes(&self.data);
        let queued = self.journal.outbox_stats().map_or(0, |s| s.log_bytes);
        let d = self.budget.observe(stored, queued);
        self.journal.set_log_ceiling(d.log_ceiling);
        if d.lowered {
            tracing::warn!(
                stored,
                budget = self.budget.target(),
                queued_logs = queued,
                log_ceiling = d.log_ceiling,
                "the data directory is at its disk budget (the profile's disk): the oldest queued log batches give way"
            );
        }
    }
}

/// The bytes the agent stores under `data` (every file but those under [`APP_DIRS`]).
/// Files that vanish while it looks are skipped.
pub fn stored_bytes(data: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(data) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| !APP_DIRS.iter().any(|d| e.file_name() == *d))
        .map(|e| size_of(&e.path()))
        .sum()
}

/// A file's allocated size, or a directory's files' (recursively); symbolic links count
/// as nothing.
fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        // What the file takes on disk (a sparse file takes less than its length).
        use std::os::unix::fs::MetadataExt;
        meta.blocks() * 512
    } else if meta.is_dir() {
        std::fs::read_dir(path).map_or(0, |entries| {
            entries.flatten().map(|e| size_of(&e.path())).sum()
        })
    } else {
        0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn nothing_gives_way_below_the_budget() {
        let mut b = DiskBudget::new(64 * MIB);
        assert_eq!(b.target(), 56 * MIB);
        let d = b.observe(40 * MIB, 30 * MIB);
        assert_eq!(d.log_ceiling, u64::MAX);
        assert!(!d.lowered);
        // A small disk keeps at least the least headroom.
        assert_eq!(DiskBudget::new(16 * MIB).target(), 12 * MIB);
    }

    #[test]
    fn logs_give_way_by_what_is_over_and_by_each_growth_after() {
        let mut b = DiskBudget::new(64 * MIB);
        // 2 MiB over with 30 MiB of logs queued: logs may take 28 MiB.
        let d = b.observe(58 * MIB, 30 * MIB);
        assert_eq!((d.log_ceiling, d.lowered), (28 * MIB, true));
        // The file does not shrink: the same size lowers nothing more.
        let d = b.observe(58 * MIB, 28 * MIB);
        assert_eq!((d.log_ceiling, d.lowered), (28 * MIB, false));
        // It grew by 1 MiB (events, reports): logs give up that much more.
        let d = b.observe(59 * MIB, 28 * MIB);
        assert_eq!((d.log_ceiling, d.lowered), (27 * MIB, true));
        // Fewer logs are queued than the ceiling allows (they were sent): the ceiling
        // follows what is queued when it comes down.
        let d = b.observe(60 * MIB, 10 * MIB);
        assert_eq!(d.log_ceiling, 9 * MIB);
        // It never goes below nothing.
        let d = b.observe(80 * MIB, 9 * MIB);
        assert_eq!(d.log_ceiling, 0);
        // Back in the budget, a little: the ceiling stays (the file keeps its size).
        assert_eq!(b.observe(50 * MIB, 0).log_ceiling, 0);
        // Well below it: lifted.
        assert_eq!(b.observe(20 * MIB, 0).log_ceiling, u64::MAX);
    }

    #[test]
    fn stored_bytes_leave_out_the_apps_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("journal.redb"), vec![1u8; 64 * 1024]).unwrap();
        std::fs::create_dir_all(d.join("identity")).unwrap();
        std::fs::write(d.join("identity/node.json"), vec![1u8; 8 * 1024]).unwrap();
        for app in APP_DIRS {
            std::fs::create_dir_all(d.join(app)).unwrap();
            std::fs::write(d.join(app).join("big"), vec![1u8; 1024 * 1024]).unwrap();
        }
        let n = stored_bytes(d);
        assert!((72 * 1024..200 * 1024).contains(&n), "{n}");
        assert_eq!(stored_bytes(&d.join("missing")), 0);
    }
}
