//! The tables and the keys of `meta`: the on-disk format's names.

use super::*;

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
pub(super) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
pub(super) const DIGESTS: TableDefinition<u64, [u8; 32]> = TableDefinition::new("event_digests");
pub(super) const INITS_SUCCEEDED: TableDefinition<(&str, &str, [u8; 32]), ()> =
    TableDefinition::new("inits_succeeded");
pub(super) const INITS_FAILED: TableDefinition<(&str, &str), ([u8; 32], u64, i64)> =
    TableDefinition::new("inits_failed");
pub(super) const NODEPORTS: TableDefinition<(&str, &str, u32, u16), u16> =
    TableDefinition::new("nodeports");
pub(super) const RESTARTS: TableDefinition<(&str, &str, u32), u32> =
    TableDefinition::new("restarts");
pub(super) const OUTBOX_CONTROL: TableDefinition<u64, &[u8]> =
    TableDefinition::new("outbox_control");
pub(super) const OUTBOX_LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox_logs");
pub(super) const OUTBOX_REPLICAS: TableDefinition<(&str, &str, u32), u64> =
    TableDefinition::new("outbox_replicas");
pub(super) const LOG_CURSORS: TableDefinition<&str, &[u8]> = TableDefinition::new("log_cursors");

pub(super) const KEY_FORMAT: &str = "format";
pub(super) const KEY_EPOCH: &str = "epoch";
pub(super) const KEY_DESIRED: &str = "desired";
/// The `applied` of the stored desired state, so that a commit checks it without decoding.
pub(super) const KEY_APPLIED: &str = "applied";
pub(super) const KEY_OUTBOX_NEXT_SEQ: &str = "outbox_next_seq";
pub(super) const KEY_OUTBOX_LOG_BYTES: &str = "outbox_log_bytes";
pub(super) const KEY_OUTBOX_COMPLETE: &str = "outbox_complete";
pub(super) const KEY_OUTBOX_DROPPED: &str = "outbox_dropped";
pub(super) const KEY_OUTBOX_DROPPED_LINES: &str = "outbox_dropped_lines";
pub(super) const KEY_OUTBOX_DROPPED_BATCHES: &str = "outbox_dropped_batches";
pub(super) const KEY_OUTBOX_CONTROL_BYTES: &str = "outbox_control_bytes";
/// The `seq` of the one queued `LogsWaiting` (0: none).
pub(super) const KEY_OUTBOX_WAITING: &str = "outbox_waiting";
pub(super) const KEY_OUTBOX_DROPPED_REPORTS: &str = "outbox_dropped_reports";
pub(super) const KEY_OUTBOX_DROPPED_RUNS: &str = "outbox_dropped_runs";

pub(super) fn port_key(k: &NodePortKey) -> (&str, &str, u32, u16) {
    (
        k.replica.instance.as_str(),
        k.replica.component.as_str(),
        k.replica.replica,
        k.container_port,
    )
}

pub(super) fn replica_key(k: &ReplicaKey) -> (&str, &str, u32) {
    (k.instance.as_str(), k.component.as_str(), k.replica)
}
