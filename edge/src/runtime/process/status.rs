//! What the process runtime reports about a replica: its [`Status`], shared by the
//! runtime, the replica's supervisor and its health checker (each writes a part of it).

use std::sync::Arc;

use parking_lot::Mutex;
use skerry_shared::planner::Phase;

/// What the runtime reports about a replica; the supervisor and its health checker write
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Status {
    pub phase: Phase,
    /// Restarts (attempts included) since the replica was created.
    pub restarts: u32,
    pub last_exit: Option<String>,
    /// When the last exit happened (unknown for an exit recorded before an agent restart).
    pub exited_at: Option<skerry_shared::clock::Timestamp>,
    pub pid: Option<u32>,
    /// `resources not enforced: ...` when the limits could not be applied.
    pub enforcement: Option<String>,
    /// Bumped at every change of process, so that a late health verdict about an earlier
    /// run is dropped.
    pub generation: u64,
}

pub(super) type SharedStatus = Arc<Mutex<Status>>;
