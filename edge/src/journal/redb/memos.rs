//! Decoding events and desired state, and reading and writing the memos.

use super::tables::*;
use super::*;

impl RedbJournal {
    pub(super) fn decode_event(
        &self,
        node_seq: u64,
        bytes: &[u8],
    ) -> Result<NodeEvent, JournalError> {
        let ev: NodeEvent = postcard::from_bytes(bytes)
            .map_err(|e| self.corrupt(format!("event {node_seq} does not decode: {e}")))?;
        if ev.node_seq != node_seq {
            return Err(self.corrupt(format!(
                "the event stored as node_seq {node_seq} says {}",
                ev.node_seq
            )));
        }
        Ok(ev)
    }

    pub(super) fn name(&self, s: &str, what: &str) -> Result<Name, JournalError> {
        Name::parse(s).map_err(|e| self.corrupt(format!("{what} {s:?}: {e}")))
    }

    pub(super) fn stored_desired(
        &self,
        table: &impl ReadableTable<&'static str, &'static [u8]>,
    ) -> Result<Option<NodeDesired>, JournalError> {
        let Some(bytes) = table.get(KEY_DESIRED).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        postcard::from_bytes(bytes.value())
            .map(Some)
            .map_err(|e| self.corrupt(format!("the desired state does not decode: {e}")))
    }

    pub(super) fn load_memos(&self, rx: &ReadTransaction) -> Result<Memos, JournalError> {
        let mut memos = Memos::default();
        let t = rx.open_table(INITS_SUCCEEDED).map_err(|e| self.err(e))?;
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, _) = item.map_err(|e| self.err(e))?;
            let (instance, component, hash) = k.value();
            memos.inits_succeeded.insert((
                self.name(instance, "instance")?,
                self.name(component, "component")?,
                Digest(hash),
            ));
        }
        let t = rx.open_table(INITS_FAILED).map_err(|e| self.err(e))?;
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let (instance, component) = k.value();
            let (hash, deployed_at, code) = v.value();
            memos.inits_failed.insert(
                (
                    self.name(instance, "instance")?,
                    self.name(component, "component")?,
                ),
                FailedInit {
                    spec_hash: Digest(hash),
                    deployed_at,
                    code,
                },
            );
        }
        let t = rx.open_table(NODEPORTS).map_err(|e| self.err(e))?;
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let (instance, component, replica, container_port) = k.value();
            let key = NodePortKey {
                replica: ReplicaKey {
                    instance: self.name(instance, "instance")?,
                    component: self.name(component, "component")?,
                    replica,
                },
                container_port,
            };
            memos.nodeports.insert(key, v.value());
        }
        let t = rx.open_table(RESTARTS).map_err(|e| self.err(e))?;
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let (instance, component, replica) = k.value();
            let key = ReplicaKey {
                instance: self.name(instance, "instance")?,
                component: self.name(component, "component")?,
                replica,
            };
            memos.restarts.insert(key, v.value());
        }
        Ok(memos)
    }

    pub(super) fn write_memos(
        &self,
        tx: &WriteTransaction,
        changes: &MemoChanges,
    ) -> Result<(), JournalError> {
        if changes.is_empty() {
            return Ok(());
        }
        let e = |e: ::redb::TableError| self.err(e);
        let mut ok = tx.open_table(INITS_SUCCEEDED).map_err(e)?;
        let mut failed = tx.open_table(INITS_FAILED).map_err(e)?;
        let mut ports = tx.open_table(NODEPORTS).map_err(e)?;
        let mut restarts = tx.open_table(RESTARTS).map_err(e)?;
        let s = |e: ::redb::StorageError| self.err(e);
        for change in &changes.changes {
            match change {
                MemoChange::InitSucceeded {
                    instance,
                    component,
                    spec_hash,
                } => {
                    ok.insert((instance.as_str(), component.as_str(), spec_hash.0), ())
                        .map_err(s)?;
                }
                MemoChange::InitFailed {
                    instance,
                    component,
                    failure,
                } => {
                    let value = (failure.spec_hash.0, failure.deployed_at, failure.code);
                    failed
                        .insert((instance.as_str(), component.as_str()), value)
                        .map_err(s)?;
                }
                MemoChange::InitFailureCleared {
                    instance,
                    component,
                } => {
                    failed
                        .remove((instance.as_str(), component.as_str()))
                        .map_err(s)?;
                }
                MemoChange::NodePort { port, host_port } => {
                    ports.insert(port_key(port), *host_port).map_err(s)?;
                }
                MemoChange::NodePortReleased { port } => {
                    ports.remove(port_key(port)).map_err(s)?;
                }
                MemoChange::Restarts { replica, count } => {
                    restarts.insert(replica_key(replica), *count).map_err(s)?;
                }
                MemoChange::RestartsCleared { replica } => {
                    restarts.remove(replica_key(replica)).map_err(s)?;
                }
                MemoChange::InstanceForgotten { instance } => {
                    let i = instance.as_str();
                    ok.retain(|k, _| k.0 != i).map_err(s)?;
                    failed.retain(|k, _| k.0 != i).map_err(s)?;
                    ports.retain(|k, _| k.0 != i).map_err(s)?;
                    restarts.retain(|k, _| k.0 != i).map_err(s)?;
                }
            }
        }
        Ok(())
    }
}
