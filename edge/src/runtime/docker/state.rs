//! From what the engine says about a container back to Skerry's words: the replica key
//! and spec hash from its labels, the phase, restarts and last exit from its state.
//! Pure, so each rule is unit-tested.

use std::collections::HashMap;

use bollard::models::{ContainerState, ContainerStateStatusEnum, HealthStatusEnum};
use skerry_shared::hash::Digest;
use skerry_shared::ids::Name;
use skerry_shared::planner::{Phase, ReplicaKey};

use super::super::labels;

/// The replica key and spec hash a container's labels carry, or why they cannot be read.
pub fn key_from_labels(labels: &HashMap<String, String>) -> Result<(ReplicaKey, Digest), String> {
    let get = |key: &str| {
        labels
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("label {key} is missing"))
    };
    let name = |key: &str| -> Result<Name, String> {
        let value = get(key)?;
        Name::parse(value).map_err(|e| format!("label {key}={value:?}: {}", e.0))
    };
    let instance = name(labels::INSTANCE)?;
    let component = name(labels::COMPONENT)?;
    let replica_text = get(labels::REPLICA)?;
    let replica: u32 = replica_text
        .parse()
        .map_err(|_| format!("label {}={replica_text:?}: not an index", labels::REPLICA))?;
    let hash_text = get(labels::SPEC_HASH)?;
    let hash = Digest::from_hex(hash_text).ok_or_else(|| {
        format!(
            "label {}={hash_text:?}: not 64 hex digits",
            labels::SPEC_HASH
        )
    })?;
    Ok((
        ReplicaKey {
            instance,
            component,
            replica,
        },
        hash,
    ))
}

/// The phase of a container in `state`:
///
/// | engine status            | health      | phase       |
/// |--------------------------|-------------|-------------|
/// | running (or paused)      | healthy     | Healthy     |
/// | running                  | unhealthy   | Unhealthy   |
/// | running                  | starting    | Running     |
/// | running                  | none        | Running     |
/// | created, restarting      |             | Starting    |
/// | exited, dead, removing   |             | Exited{code}|
pub fn phase(state: &ContainerState) -> Phase {
    let code = state.exit_code.unwrap_or(0);
    match state.status {
        Some(ContainerStateStatusEnum::RUNNING)
        | Some(ContainerStateStatusEnum::PAUSED)
        | Some(ContainerStateStatusEnum::STOPPING) => {
            match state.health.as_ref().and_then(|h| h.status) {
                Some(HealthStatusEnum::HEALTHY) => Phase::Healthy,
                Some(HealthStatusEnum::UNHEALTHY) => Phase::Unhealthy,
                _ => Phase::Running,
            }
        }
        Some(ContainerStateStatusEnum::CREATED) | Some(ContainerStateStatusEnum::RESTARTING) => {
            Phase::Starting
        }
        Some(ContainerStateStatusEnum::EXITED)
        | Some(ContainerStateStatusEnum::DEAD)
        | Some(ContainerStateStatusEnum::REMOVING) => Phase::Exited { code },
        Some(ContainerStateStatusEnum::EMPTY) | None => {
            // An engine that leaves out the status: fall back on the flags.
            if state.running == Some(true) {
                Phase::Running
            } else if state.restarting == Some(true) {
                Phase::Starting
            } else {
                Phase::Exited { code }
            }
        }
    }
}

/// The last exit in words (`exited 3`, `OOM killed`, `exited 1: <engine error>`), for a
/// container that is not running. A running container has none: the engine resets the
/// exit code when it starts one again.
pub fn last_exit(state: &ContainerState) -> Option<String> {
    let ended = matches!(
        state.status,
        Some(ContainerStateStatusEnum::EXITED)
            | Some(ContainerStateStatusEnum::DEAD)
            | Some(ContainerStateStatusEnum::RESTARTING)
            | Some(ContainerStateStatusEnum::REMOVING)
    );
    let error = state.error.as_deref().filter(|e| !e.is_empty());
    if state.oom_killed == Some(true) {
        return Some("OOM killed".to_owned());
    }
    if ended {
        let code = state.exit_code.unwrap_or(0);
        return Some(match error {
            Some(e) => format!("exited {code}: {e}"),
            None => format!("exited {code}"),
        });
    }
    // A container the engine could not start stays `created` with the reason.
    error.map(str::to_owned)
}

/// The engine's restart count as Skerry's.
pub fn restarts(count: Option<i64>) -> u32 {
    count.map_or(0, |c| u32::try_from(c.max(0)).unwrap_or(u32::MAX))
}

/// A container that was created and never started: what a crash of the agent between
/// create and start leaves. The engine reports `created` with no start time (its zero time,
/// year 1). Such a container is the agent's unfinished work, not a replica to adopt.
pub fn never_started(state: &ContainerState) -> bool {
    state.status == Some(ContainerStateStatusEnum::CREATED)
        && state
            .started_at
            .as_deref()
            .is_none_or(|t| t.is_empty() || t.starts_with("0001-01-01"))
}

#[cfg(test)]
mod tests {
    use bollard::models::Health;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn good_labels() -> Vec<(&'static str, String)> {
        vec![
            (labels::INSTANCE, "weather".to_owned()),
            (labels::COMPONENT, "db".to_owned()),
            (labels::REPLICA, "2".to_owned()),
            (labels::SPEC_HASH, Digest::of(b"x").to_hex()),
        ]
    }

    #[test]
    fn labels_give_key_and_hash() {
        let owned = good_labels();
        let pairs: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (key, hash) = key_from_labels(&labels(&pairs)).unwrap();
        assert_eq!(key.to_string(), "weather/db#2");
        assert_eq!(hash, Digest::of(b"x"));
    }

    #[test]
    fn bad_labels_say_which() {
        for (broken, value, expect) in [
            (labels::INSTANCE, "Not_A_Name", labels::INSTANCE),
            (labels::REPLICA, "-1", labels::REPLICA),
            (labels::SPEC_HASH, "abc", labels::SPEC_HASH),
        ] {
            let owned = good_labels();
            let pairs: Vec<(&str, &str)> = owned
                .iter()
                .map(|(k, v)| (*k, if *k == broken { value } else { v.as_str() }))
                .collect();
            let err = key_from_labels(&labels(&pairs)).unwrap_err();
            assert!(err.contains(expect), "{err}");
        }
        let err = key_from_labels(&labels(&[])).unwrap_err();
        assert!(err.contains("missing"), "{err}");
    }

    fn state(status: ContainerStateStatusEnum, health: Option<HealthStatusEnum>) -> ContainerState {
        ContainerState {
            status: Some(status),
            health: health.map(|h| Health {
                status: Some(h),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_a_created_container_without_a_start_never_started() {
        use ContainerStateStatusEnum as S;
        let with = |status, started: Option<&str>| ContainerState {
            status: Some(status),
            started_at: started.map(str::to_owned),
            ..Default::default()
        };
        assert!(never_started(&with(S::CREATED, None)));
        assert!(never_started(&with(
            S::CREATED,
            Some("0001-01-01T00:00:00Z")
        )));
        assert!(never_started(&with(S::CREATED, Some(""))));
        // Started once, then created again by a restart: the engine's to run.
        assert!(!never_started(&with(
            S::CREATED,
            Some("2026-12-04T05:00:00.123Z")
        )));
        assert!(!never_started(&with(S::RUNNING, None)));
        assert!(!never_started(&with(
            S::EXITED,
            Some("0001-01-01T00:00:00Z")
        )));
    }

    #[test]
    fn phases() {
        use ContainerStateStatusEnum as S;
        use HealthStatusEnum as H;
        assert_eq!(phase(&state(S::RUNNING, None)), Phase::Running);
        assert_eq!(phase(&state(S::RUNNING, Some(H::STARTING))), Phase::Running);
        assert_eq!(phase(&state(S::RUNNING, Some(H::HEALTHY))), Phase::Healthy);
        assert_eq!(
            phase(&state(S::RUNNING, Some(H::UNHEALTHY))),
            Phase::Unhealthy
        );
        assert_eq!(phase(&state(S::CREATED, None)), Phase::Starting);
        assert_eq!(phase(&state(S::RESTARTING, None)), Phase::Starting);
        let mut exited = state(S::EXITED, None);
        exited.exit_code = Some(3);
        assert_eq!(phase(&exited), Phase::Exited { code: 3 });
        assert_eq!(phase(&state(S::DEAD, None)), Phase::Exited { code: 0 });
    }

    #[test]
    fn last_exits() {
        use ContainerStateStatusEnum as S;
        let mut s = state(S::EXITED, None);
        s.exit_code = Some(3);
        assert_eq!(last_exit(&s).as_deref(), Some("exited 3"));
        s.oom_killed = Some(true);
        s.exit_code = Some(137);
        assert_eq!(last_exit(&s).as_deref(), Some("OOM killed"));
        let mut running = state(S::RUNNING, None);
        assert_eq!(last_exit(&running), None);
        running.error = Some(String::new());
        assert_eq!(last_exit(&running), None);
        let mut failed = state(S::CREATED, None);
        failed.error = Some("exec: \"nope\": executable file not found".to_owned());
        assert!(last_exit(&failed).unwrap().contains("not found"));
    }

    #[test]
    fn restart_counts() {
        assert_eq!(restarts(Some(4)), 4);
        assert_eq!(restarts(Some(-1)), 0);
        assert_eq!(restarts(None), 0);
        assert_eq!(restarts(Some(i64::MAX)), u32::MAX);
    }
}
