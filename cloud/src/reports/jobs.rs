//! Job runs: what agents report of their jobs' runs (`OutboxBody::JobRun`), one record per
//! run, kept in `job_runs` under (instance, node, component, run id).
//!
//! A run is reported when it starts and when it ends; both carry its id, so the end
//! replaces the start and a run is listed once however often it was sent. At most
//! [`MAX_RUNS_PER_JOB`] runs are kept per job and node: the oldest go first.

use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};
use serde::{Deserialize, Serialize};
use skerry_shared::clock::Timestamp;
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::outbox::JobReport;

use super::ReportError;
use super::tables::{corrupt, node_key, node_of, storage};

/// (instance, node, component, run id) to a [`StoredRun`] (postcard).
pub(super) const JOB_RUNS: TableDefinition<(&str, u128, &str, u64), &[u8]> =
    TableDefinition::new("job_runs");

/// The most runs kept per job and node.
pub const MAX_RUNS_PER_JOB: usize = 200;

/// The most runs one query answers.
pub const MAX_RUNS_LISTED: usize = 1_000;

/// A run as stored: the report, and when the cloud stored it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRun {
    pub node: NodeId,
    pub report: JobReport,
    pub stored: Timestamp,
}

/// Stores one run report (replacing what its start said) and keeps the bound. A report
/// beyond its bounds is refused (`Ok(false)`), never stored.
pub(super) fn store(
    table: &mut Table<'_, (&'static str, u128, &'static str, u64), &'static [u8]>,
    node: NodeId,
    report: &JobReport,
    now: Timestamp,
) -> Result<bool, ReportError> {
    let run = &report.run;
    if !run.within_bounds() {
        return Ok(false);
    }
    let (instance, component) = (run.instance.as_str(), run.component.as_str());
    let id = node_key(node);
    let record = StoredRun {
        node,
        report: report.clone(),
        stored: now,
    };
    let bytes = postcard::to_stdvec(&record).map_err(storage)?;
    table
        .insert((instance, id, component, run.id), bytes.as_slice())
        .map_err(storage)?;
    let range = (instance, id, component, 0)..=(instance, id, component, u64::MAX);
    let count = table.range(range.clone()).map_err(storage)?.count();
    if count > MAX_RUNS_PER_JOB {
        let old: Vec<u64> = table
            .range(range)
            .map_err(storage)?
            .take(count - MAX_RUNS_PER_JOB)
            .map(|item| item.map(|(k, _)| k.value().3))
            .collect::<Result<_, _>>()
            .map_err(storage)?;
        for run_id in old {
            table
                .remove((instance, id, component, run_id))
                .map_err(storage)?;
        }
    }
    Ok(true)
}

/// Which runs to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunQuery {
    pub instance: Name,
    pub component: Option<Name>,
    pub node: Option<NodeId>,
    /// The newest this many (at most [`MAX_RUNS_LISTED`]).
    pub limit: usize,
}

/// The runs of `q.instance` that match, oldest first by start, the newest `q.limit`.
pub(super) fn query(db: &Database, q: &RunQuery) -> Result<Vec<StoredRun>, ReportError> {
    let rx = db.begin_read().map_err(storage)?;
    let table = match rx.open_table(JOB_RUNS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(storage(e)),
    };
    let instance = q.instance.as_str();
    let range = (instance, 0u128, "", 0u64)..=(instance, u128::MAX, "\u{10FFFF}", u64::MAX);
    let mut runs = Vec::new();
    for item in table.range(range).map_err(storage)? {
        let (k, v) = item.map_err(storage)?;
        let (_, node, component, _) = k.value();
        if q.node.is_some_and(|n| node_of(node) != n)
            || q.component
                .as_ref()
                .is_some_and(|c| c.as_str() != component)
        {
            continue;
        }
        let run: StoredRun = postcard::from_bytes(v.value()).map_err(corrupt)?;
        runs.push(run);
    }
    runs.sort_by_key(|r| (r.report.run.started, r.report.run.id));
    let limit = q.limit.min(MAX_RUNS_LISTED);
    if runs.len() > limit {
        runs.drain(..runs.len() - limit);
    }
    Ok(runs)
}
