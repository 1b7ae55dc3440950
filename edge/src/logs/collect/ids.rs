//! The ids of log sources, as the journal keeps their cursors:
//! `dir/{instance}/{component}/{replica}` (a `log_dir`), `out/…` (a container's own
//! output), `own/…` (an `exec` replica's own output files).

use std::collections::BTreeMap;

use skerry_shared::planner::ReplicaKey;

pub(super) fn dir_key(key: &ReplicaKey) -> String {
    format!("dir/{}/{}/{}", key.instance, key.component, key.replica)
}

pub(super) fn output_key(key: &ReplicaKey) -> String {
    format!("out/{}/{}/{}", key.instance, key.component, key.replica)
}

/// The replica of a directory source's id (`dir/…` or `own/…`).
fn source_replica(id: &str) -> Option<ReplicaKey> {
    let rest = id
        .strip_prefix("dir/")
        .or_else(|| id.strip_prefix("own/"))?;
    let mut parts = rest.split('/');
    let instance = skerry_shared::ids::Name::parse(parts.next()?).ok()?;
    let component = skerry_shared::ids::Name::parse(parts.next()?).ok()?;
    let replica = parts.next()?.parse().ok()?;
    Some(ReplicaKey::new(&instance, &component, replica))
}

/// Files waiting for a slot per replica, as the saved positions in `cursors` say (for
/// `skerry-edge status`, which reads only the journal).
pub fn waiting_of(cursors: &BTreeMap<String, Vec<u8>>) -> BTreeMap<ReplicaKey, u64> {
    let mut out = BTreeMap::new();
    for (id, state) in cursors {
        let Some(key) = source_replica(id) else {
            continue;
        };
        let files = super::super::tail::waiting_in(state);
        if files > 0 {
            *out.entry(key).or_insert(0) += files;
        }
    }
    out
}

pub(super) fn process_output_key(key: &ReplicaKey) -> String {
    format!("own/{}/{}/{}", key.instance, key.component, key.replica)
}
