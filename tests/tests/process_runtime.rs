//! The process runtime on real processes of this host: environment and storage,
//! restart policies with their backoff, health checks, adoption by a new runtime after the
//! old one is gone (as after `kill -9` of the agent), stop and purge, and output files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use skerry_edge::runtime::process::ProcessRuntime;
use skerry_edge::runtime::{Observed, ObservedReplica, ReplicaSpec, Runtime, StorageMount};
use skerry_shared::hash::Digest;
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::manifest::{
    Component, ComponentKind, Health, MemoryRange, Resources, RestartPolicy,
};
use skerry_shared::planner::{Phase, ReplicaKey};
use skerry_shared::quantity::{self, Memory};

/// Generous: these are real processes on a machine that may be busy.
const DEADLINE: Duration = Duration::from_secs(15);

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn key(instance: &str, component: &str) -> ReplicaKey {
    ReplicaKey::new(&name(instance), &name(component), 0)
}

fn exec_component(component: &str, argv: &[&str]) -> Component {
    Component {
        image: None,
        exec: Some(argv.iter().map(|s| (*s).to_owned()).collect()),
        ..Component::image(name(component), "unused")
    }
}

fn spec(node: NodeId, key: &ReplicaKey, component: Component) -> ReplicaSpec {
    ReplicaSpec {
        node,
        key: key.clone(),
        spec_hash: Digest::of(format!("{component:?}").as_bytes()),
        component,
        env: BTreeMap::new(),
        ports: Vec::new(),
        storage: Vec::new(),
        log_dir_host: None,
        secrets: Vec::new(),
    }
}

/// Observes until `check` holds for `key`'s replica, or fails with what was last seen.
async fn wait_replica(
    rt: &ProcessRuntime,
    node: NodeId,
    key: &ReplicaKey,
    what: &str,
    check: impl Fn(&ObservedReplica) -> bool,
) -> ObservedReplica {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let observed = rt.observe(node).await.unwrap();
        if let Some(r) = observed.replicas.iter().find(|r| r.key == *key)
            && check(r)
        {
            return r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{key}: not {what} within {DEADLINE:?}; last seen: {observed:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls a condition on the host until it holds.
async fn wait_until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "not {what} within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn record(state: &Path, key: &ReplicaKey) -> serde_json::Value {
    let path = state.join("replicas").join(format!(
        "{}.{}.{}.json",
        key.instance, key.component, key.replica
    ));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn recorded_pid(state: &Path, key: &ReplicaKey) -> u32 {
    let pid = record(state, key)["pid"].as_u64().unwrap();
    u32::try_from(pid).unwrap()
}

/// A process that exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        !matches!(state, Some("Z" | "X"))
    })
}

fn only(observed: &Observed) -> &ObservedReplica {
    assert_eq!(observed.replicas.len(), 1, "{observed:?}");
    &observed.replicas[0]
}

#[tokio::test]
async fn a_service_runs_with_exactly_its_environment_and_its_storage() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let rt = ProcessRuntime::new(state.clone()).unwrap();
    let node = NodeId::random();
    let k = key("weather", "db");
    let script = "echo \"$GREETING\" > \"$SKERRY_STORAGE_DATA/out\"; \
                  echo \"$SKERRY_STORAGE_RAW_FRAMES\" > frames; env > env.txt; exec sleep 60";
    let mut s = spec(node, &k, exec_component("db", &["/bin/sh", "-c", script]));
    s.env.insert("GREETING".into(), "hello".into());
    s.storage = ["data", "raw-frames"]
        .into_iter()
        .map(|n| StorageMount {
            name: name(n),
            container: None,
        })
        .collect();

    rt.start(&s).await.unwrap();
    let r = wait_replica(&rt, node, &k, "running", |r| r.phase == Phase::Running).await;
    assert_eq!(r.spec_hash, s.spec_hash);
    assert_eq!(r.restarts, 0);

    let storage = state.join("storage/weather/data");
    let work = state.join("work/weather.db.0");
    wait_until("written", || work.join("env.txt").is_file()).await;
    wait_until("complete", || {
        std::fs::read_to_string(work.join("env.txt")).is_ok_and(|e| e.contains("GREETING"))
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(storage.join("out")).unwrap(),
        "hello\n"
    );
    let mode = std::fs::metadata(&storage).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "storage is private");
    let frames = std::fs::read_to_string(work.join("frames")).unwrap();
    assert_eq!(
        Path::new(frames.trim()),
        std::fs::canonicalize(state.join("storage/weather/raw-frames")).unwrap()
    );

    // Exactly the spec's environment: nothing of the agent's leaks in (the shell adds
    // only its own bookkeeping).
    let env = std::fs::read_to_string(work.join("env.txt")).unwrap();
    let child: Vec<&str> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k)
        .collect();
    for k in &child {
        assert!(
            [
                "GREETING",
                "SKERRY_STORAGE_DATA",
                "SKERRY_STORAGE_RAW_FRAMES",
                "PWD",
                "SHLVL",
                "_",
                "OLDPWD"
            ]
            .contains(k),
            "unexpected variable {k} in {env}"
        );
    }
    assert!(env.contains("GREETING=hello\n"), "{env}");

    // Starting a running key again replaces its process.
    let first = recorded_pid(&state, &k);
    s.env.insert("GREETING".into(), "again".into());
    rt.start(&s).await.unwrap();
    let second = recorded_pid(&state, &k);
    assert_ne!(first, second);
    wait_until("the first process gone", || !alive(first)).await;
    assert!(alive(second));
    assert_eq!(only(&rt.observe(node).await.unwrap()).phase, Phase::Running);
    wait_until("greeted again", || {
        std::fs::read_to_string(storage.join("out")).is_ok_and(|s| s == "again\n")
    })
    .await;

    rt.stop(node, &k).await.unwrap();
    wait_until("gone", || !alive(second)).await;
}

#[tokio::test]
async fn restart_policies_are_dockers_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::new(dir.path().join("state")).unwrap();
    let node = NodeId::random();

    // always (a service's default): restarted, 1 s then 2 s apart at least.
    let always = key("crash", "always");
    let started = Instant::now();
    rt.start(&spec(
        node,
        &always,
        exec_component("always", &["/bin/sh", "-c", "exit 1"]),
    ))
    .await
    .unwrap();
    let r = wait_replica(&rt, node, &always, "restarted twice", |r| r.restarts >= 2).await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "two restarts after {:?}: the backoff was not honored",
        started.elapsed()
    );
    assert_eq!(r.last_exit.as_deref(), Some("exited 1"));

    // never: stays exited, with its code.
    let never = key("crash", "never");
    let c = Component {
        restart: Some(RestartPolicy::Never),
        ..exec_component("never", &["/bin/sh", "-c", "exit 1"])
    };
    rt.start(&spec(node, &never, c)).await.unwrap();
    let r = wait_replica(&rt, node, &never, "exited", |r| r.phase.exited()).await;
    assert_eq!(r.phase, Phase::Exited { code: 1 });
    assert_eq!(r.restarts, 0);
    assert_eq!(r.last_exit.as_deref(), Some("exited 1"));
    let rec = record(&dir.path().join("state"), &never);
    assert_eq!(rec["restart_pending"], false, "{rec}");
    assert!(rec["pid"].is_null(), "{rec}");

    // on-failure after a clean exit: not restarted.
    let clean = key("crash", "clean");
    let c = Component {
        restart: Some(RestartPolicy::OnFailure),
        ..exec_component("clean", &["true"])
    };
    rt.start(&spec(node, &clean, c)).await.unwrap();
    let r = wait_replica(&rt, node, &clean, "exited", |r| r.phase.exited()).await;
    assert_eq!((r.phase, r.restarts), (Phase::Exited { code: 0 }, 0));

    // An init runs once.
    let init = key("crash", "migrate");
    let c = Component {
        kind: ComponentKind::Init,
        ..exec_component("migrate", &["/bin/true"])
    };
    rt.start(&spec(node, &init, c)).await.unwrap();
    let r = wait_replica(&rt, node, &init, "exited", |r| r.phase.exited()).await;
    assert_eq!((r.phase, r.restarts), (Phase::Exited { code: 0 }, 0));

    // A killed process: in words, and 128 + the signal as its code.
    let killed = key("crash", "killed");
    let c = Component {
        restart: Some(RestartPolicy::Never),
        ..exec_component("killed", &["/bin/sh", "-c", "kill -9 $$"])
    };
    rt.start(&spec(node, &killed, c)).await.unwrap();
    let r = wait_replica(&rt, node, &killed, "exited", |r| r.phase.exited()).await;
    assert_eq!(r.phase, Phase::Exited { code: 137 });
    assert_eq!(r.last_exit.as_deref(), Some("killed by signal 9"));

    for k in [&always, &never, &clean, &init, &killed] {
        rt.stop(node, k).await.unwrap();
    }
    assert!(rt.observe(node).await.unwrap().replicas.is_empty());
}

#[tokio::test]
async fn a_missing_program_is_unrunnable() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::new(dir.path().join("state")).unwrap();
    let node = NodeId::random();
    let k = key("broken", "svc");
    let err = rt
        .start(&spec(
            node,
            &k,
            exec_component("svc", &["no-such-program-anywhere"]),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, skerry_edge::runtime::RuntimeError::Unrunnable(_)),
        "{err}"
    );
    assert!(rt.observe(node).await.unwrap().replicas.is_empty());
}

#[tokio::test]
async fn health_checks_run_on_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::new(dir.path().join("state")).unwrap();
    let node = NodeId::random();
    let k = key("checked", "web");
    let flag = dir.path().join("ready");
    let c = Component {
        health: Some(Health {
            command: vec![
                "test".into(),
                "-f".into(),
                flag.to_string_lossy().into_owned(),
            ],
            interval: Some(quantity::Duration::from_millis(100)),
            timeout: Some(quantity::Duration::from_secs(2)),
            retries: Some(2),
        }),
        ..exec_component("web", &["/bin/sleep", "60"])
    };
    rt.start(&spec(node, &k, c)).await.unwrap();
    let first = only(&rt.observe(node).await.unwrap()).phase;
    assert!(
        matches!(first, Phase::Running | Phase::Unhealthy),
        "no verdict yet, or a failing one: {first:?}"
    );
    wait_replica(&rt, node, &k, "unhealthy", |r| r.phase == Phase::Unhealthy).await;
    std::fs::write(&flag, "").unwrap();
    wait_replica(&rt, node, &k, "healthy", |r| r.phase == Phase::Healthy).await;
    std::fs::remove_file(&flag).unwrap();
    let r = wait_replica(&rt, node, &k, "unhealthy again", |r| {
        r.phase == Phase::Unhealthy
    })
    .await;
    assert_eq!(
        r.restarts, 0,
        "an unhealthy process is reported, not restarted"
    );
    rt.stop(node, &k).await.unwrap();
}

#[tokio::test]
async fn a_new_runtime_adopts_the_processes_of_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let node = NodeId::random();
    let k = key("kept", "svc");
    let s = spec(node, &k, exec_component("svc", &["/bin/sleep", "60"]));

    let rt = ProcessRuntime::new(state.clone()).unwrap();
    rt.start(&s).await.unwrap();
    wait_replica(&rt, node, &k, "running", |r| r.phase == Phase::Running).await;
    let pid = recorded_pid(&state, &k);
    // The agent dies: its supervisors go, its processes stay.
    drop(rt);
    assert!(alive(pid));

    let rt = ProcessRuntime::new(state.clone()).unwrap();
    let observed = rt.observe(node).await.unwrap();
    let r = only(&observed);
    assert_eq!((&r.key, r.phase, r.restarts), (&k, Phase::Running, 0));
    assert_eq!(r.spec_hash, s.spec_hash);
    assert_eq!(
        recorded_pid(&state, &k),
        pid,
        "the same process, not a second one"
    );
    assert!(alive(pid));
    assert!(
        rt.observe(node).await.unwrap().replicas.len() == 1,
        "observing again adopts nothing twice"
    );
    assert!(
        rt.observe(NodeId::random())
            .await
            .unwrap()
            .replicas
            .is_empty(),
        "another node's view holds none of it"
    );

    // The agent dies again, and its process dies while no agent watches: the next one
    // finds it dead and applies the restart policy (always).
    drop(rt);
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_until("killed", || !alive(pid)).await;

    let rt = ProcessRuntime::new(state.clone()).unwrap();
    let r = wait_replica(&rt, node, &k, "restarted", |r| {
        r.phase == Phase::Running && r.restarts == 1
    })
    .await;
    assert!(r.last_exit.is_some_and(|e| e.contains("unknown")));
    let new_pid = recorded_pid(&state, &k);
    assert_ne!(new_pid, pid);
    assert!(alive(new_pid));

    // An adopted process that exits is seen by polling, and restarted too.
    drop(rt);
    let rt = ProcessRuntime::new(state.clone()).unwrap();
    assert_eq!(only(&rt.observe(node).await.unwrap()).phase, Phase::Running);
    std::process::Command::new("kill")
        .args(["-9", &new_pid.to_string()])
        .status()
        .unwrap();
    let r = wait_replica(&rt, node, &k, "restarted after an adopted exit", |r| {
        r.phase == Phase::Running && r.restarts == 2
    })
    .await;
    assert_eq!(r.key, k);
    let third = recorded_pid(&state, &k);
    assert!(third != new_pid && alive(third));

    rt.stop(node, &k).await.unwrap();
    wait_until("stopped", || !alive(third)).await;
    assert!(rt.observe(node).await.unwrap().replicas.is_empty());
    assert!(!state.join("replicas/kept.svc.0.json").exists());
}

#[tokio::test]
async fn a_new_runtime_stops_a_process_it_has_not_observed() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let node = NodeId::random();
    let k = key("orphan", "svc");
    let rt = ProcessRuntime::new(state.clone()).unwrap();
    rt.start(&spec(
        node,
        &k,
        exec_component("svc", &["/bin/sleep", "60"]),
    ))
    .await
    .unwrap();
    let pid = recorded_pid(&state, &k);
    drop(rt);

    let rt = ProcessRuntime::new(state.clone()).unwrap();
    rt.stop(node, &k).await.unwrap();
    wait_until("stopped", || !alive(pid)).await;
    assert!(rt.observe(node).await.unwrap().replicas.is_empty());
}

#[tokio::test]
async fn stop_is_idempotent_and_storage_stays_until_purged() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let rt = ProcessRuntime::new(state.clone()).unwrap();
    let node = NodeId::random();
    let k = key("store", "svc");
    let mut s = spec(
        node,
        &k,
        exec_component(
            "svc",
            &[
                "/bin/sh",
                "-c",
                "echo kept > \"$SKERRY_STORAGE_DATA/file\"; exec sleep 60",
            ],
        ),
    );
    s.storage = vec![StorageMount {
        name: name("data"),
        container: None,
    }];
    rt.start(&s).await.unwrap();
    let data = state.join("storage/store/data");
    wait_until("written", || data.join("file").is_file()).await;
    let pid = recorded_pid(&state, &k);

    rt.stop(node, &k).await.unwrap();
    assert!(!alive(pid));
    rt.stop(node, &k).await.unwrap();
    rt.stop(node, &key("never", "there")).await.unwrap();
    assert!(rt.observe(node).await.unwrap().replicas.is_empty());
    assert!(data.join("file").is_file(), "storage is kept across stop");
    assert!(
        !state.join("work/store.svc.0").exists(),
        "the working directory goes"
    );

    rt.purge_storage(node, &name("store"), &name("data"))
        .await
        .unwrap();
    assert!(!data.exists());
    rt.purge_storage(node, &name("store"), &name("data"))
        .await
        .unwrap();
}

#[tokio::test]
async fn output_goes_to_the_log_dir() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::new(dir.path().join("state")).unwrap();
    let node = NodeId::random();
    let k = key("logged", "api");
    let logs: PathBuf = dir.path().join("logs/api");
    let mut s = spec(
        node,
        &k,
        exec_component(
            "api",
            &[
                "/bin/sh",
                "-c",
                "echo line-one; echo oops >&2; exec sleep 60",
            ],
        ),
    );
    s.log_dir_host = Some(logs.clone());
    rt.start(&s).await.unwrap();
    let read = |f: &str| std::fs::read_to_string(logs.join(f)).unwrap_or_default();
    wait_until("logged", || {
        read("api-0.stdout.log") == "line-one\n" && read("api-0.stderr.log") == "oops\n"
    })
    .await;
    rt.stop(node, &k).await.unwrap();
    assert_eq!(
        read("api-0.stdout.log"),
        "line-one\n",
        "the log dir is kept"
    );
}

#[tokio::test]
async fn limits_that_cannot_be_enforced_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let no_cgroup = dir.path().join("no-cgroup");
    std::fs::create_dir(&no_cgroup).unwrap();
    let rt = ProcessRuntime::new(dir.path().join("state"))
        .unwrap()
        .with_cgroup_root(no_cgroup);
    let node = NodeId::random();
    let k = key("limited", "svc");
    let c = Component {
        resources: Some(Resources {
            cpu: None,
            memory: Some(MemoryRange {
                request: None,
                limit: Some(Memory::mib(64)),
            }),
        }),
        ..exec_component("svc", &["/bin/sleep", "60"])
    };
    rt.start(&spec(node, &k, c)).await.unwrap();
    let r = only(&rt.observe(node).await.unwrap()).clone();
    assert_eq!(r.phase, Phase::Running, "it runs anyway");
    let why = rt.enforcement(node, &k).unwrap();
    assert!(
        why.starts_with("resources not enforced: no cgroup v2"),
        "{why}"
    );
    assert_eq!(r.last_exit, Some(why), "reported while there is no exit");
    rt.stop(node, &k).await.unwrap();
}

#[tokio::test]
async fn a_process_that_ignores_sigterm_is_killed_after_ten_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let rt = ProcessRuntime::new(state.clone()).unwrap();
    let node = NodeId::random();
    let k = key("stubborn", "svc");
    let script = "trap '' TERM; echo ready > ready; while :; do sleep 1; done";
    rt.start(&spec(
        node,
        &k,
        exec_component("svc", &["/bin/sh", "-c", script]),
    ))
    .await
    .unwrap();
    let work = state.join("work/stubborn.svc.0");
    wait_until("trapping", || work.join("ready").is_file()).await;
    let pid = recorded_pid(&state, &k);
    let started = Instant::now();
    rt.stop(node, &k).await.unwrap();
    let took = started.elapsed();
    assert!(!alive(pid));
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(14),
        "stop took {took:?}"
    );
}
