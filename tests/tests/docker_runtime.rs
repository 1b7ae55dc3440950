#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Docker runtime against the real engine: networks from the subnet pool, containers
//! mapped from replica specs, observation by labels, adoption after an agent restart,
//! named storage, and the errors a reconciler acts on.
//!
//! Each test runs as its own random node id, so no test sees another's containers, and a
//! [`DockerCleanup`] removes what the node left, pass or fail. Images are built locally
//! `FROM scratch` with the host's static busybox. Every wait polls `observe` with a
//! deadline; nothing sleeps for a fixed time.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bollard::models::RestartPolicyNameEnum;
use skerry_edge::runtime::docker::subnet::Subnet;
use skerry_edge::runtime::docker::{DockerOptions, DockerRuntime};
use skerry_edge::runtime::{
    ObservedReplica, PortBinding, ReplicaSpec, Runtime, RuntimeError, StorageMount, labels,
};
use skerry_shared::hash::Digest;
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::manifest::{
    Component, ComponentKind, CpuRange, Expose, Health, MemoryRange, Mount, MountType, Port,
    PullPolicy, Resources, RestartPolicy, Storage,
};
use skerry_shared::planner::{Phase, ReplicaKey};
use skerry_shared::quantity::{Cpu, Duration as Span, Memory};
use skerry_tests::free_port;
use skerry_tests::images::{DockerCleanup, busybox_image, unique};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long any one condition may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// A node of the test's own: its id, a runtime, and the cleanup of what it leaves.
struct TestNode {
    id: NodeId,
    rt: DockerRuntime,
    image: String,
    _cleanup: DockerCleanup,
}

fn options() -> DockerOptions {
    DockerOptions {
        // Busybox `sh` as PID 1 ignores SIGTERM; do not wait 10 s for it.
        stop_timeout: Duration::from_secs(1),
        ..DockerOptions::default()
    }
}

async fn test_node() -> TestNode {
    let id = NodeId::random();
    let cleanup = DockerCleanup::new(id);
    let image = busybox_image("1").expect("build the busybox image");
    let rt = DockerRuntime::connect(options())
        .await
        .expect("connect to Docker");
    TestNode {
        id,
        rt,
        image,
        _cleanup: cleanup,
    }
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn instance(prefix: &str) -> Name {
    name(&unique(prefix))
}

impl TestNode {
    /// A component that runs `sh -c script` in the busybox image, never pulled.
    fn component(&self, component: &str, kind: ComponentKind, script: &str) -> Component {
        Component {
            kind,
            pull: Some(PullPolicy::Never),
            command: Some(vec!["sh".into(), "-c".into(), script.into()]),
            ..Component::image(name(component), &self.image)
        }
    }

    /// The spec the reconciler would resolve for `component` (ports as published, storage
    /// at its container paths, the `SKERRY_*` environment).
    fn spec(&self, instance: &Name, component: Component, replica: u32) -> ReplicaSpec {
        let key = ReplicaKey::new(instance, &component.name, replica);
        let mut env: BTreeMap<String, String> = component
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().to_owned()))
            .collect();
        env.insert("SKERRY_INSTANCE".into(), instance.to_string());
        env.insert("SKERRY_COMPONENT".into(), component.name.to_string());
        env.insert("SKERRY_REPLICA".into(), replica.to_string());
        env.insert("SKERRY_NODE".into(), self.id.to_string());
        ReplicaSpec {
            node: self.id,
            spec_hash: Digest::of(format!("{component:?}").as_bytes()),
            env,
            ports: component
                .ports
                .iter()
                .map(|p| PortBinding {
                    container: p.container,
                    host: p.host,
                })
                .collect(),
            storage: component
                .storage
                .iter()
                .map(|s| StorageMount {
                    name: s.name.clone(),
                    container: Some(s.container.clone()),
                })
                .collect(),
            log_dir_host: None,
            secrets: Vec::new(),
            key,
            component,
        }
    }

    /// Polls `observe` until the replica `key` satisfies `ok`; panics with the last
    /// observation at the deadline.
    async fn wait_for(
        &self,
        key: &ReplicaKey,
        what: &str,
        ok: impl Fn(&ObservedReplica) -> bool,
    ) -> ObservedReplica {
        self.wait_for_on(&self.rt, key, what, ok).await
    }

    async fn wait_for_on(
        &self,
        rt: &DockerRuntime,
        key: &ReplicaKey,
        what: &str,
        ok: impl Fn(&ObservedReplica) -> bool,
    ) -> ObservedReplica {
        let deadline = Instant::now() + DEADLINE;
        let mut last = None;
        loop {
            let observed = rt.observe(self.id).await.expect("observe");
            let replica = observed.replicas.into_iter().find(|r| &r.key == key);
            if let Some(r) = &replica
                && ok(r)
            {
                return r.clone();
            }
            last = replica.or(last);
            assert!(
                Instant::now() < deadline,
                "{key}: not {what} after {DEADLINE:?}; last seen: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn inspect(&self, key: &ReplicaKey) -> bollard::models::ContainerInspectResponse {
        self.rt
            .client()
            .inspect_container(&container_name(self.id, key), None)
            .await
            .expect("inspect container")
    }
}

fn network_name(node: NodeId, instance: &Name) -> String {
    skerry_edge::runtime::docker::spec::network_name(node, instance)
}

fn container_name(node: NodeId, key: &ReplicaKey) -> String {
    skerry_edge::runtime::docker::spec::container_name(node, key)
}

fn exited(code: i64) -> impl Fn(&ObservedReplica) -> bool {
    move |r| r.phase == Phase::Exited { code }
}

#[tokio::test]
async fn components_reach_each_other_by_name() {
    let node = test_node().await;
    let inst = instance("reach");
    node.rt.create_network(node.id, &inst).await.unwrap();

    let web = node.component(
        "web",
        ComponentKind::Service,
        "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 8080 -h /www",
    );
    let client = node.component(
        "client",
        ComponentKind::Init,
        "for i in $(seq 1 200); do \
           if wget -q -O /tmp/page http://web:8080/ && grep -q hello-from-web /tmp/page; then \
             echo reached > /tmp/marker; exit 0; \
           fi; sleep 0.1; \
         done; exit 1",
    );
    let web = node.spec(&inst, web, 0);
    let client = node.spec(&inst, client, 0);
    node.rt.start(&web).await.unwrap();
    node.rt.start(&client).await.unwrap();

    let done = node
        .wait_for(&client.key, "exited", |r| r.phase.exited())
        .await;
    assert_eq!(done.phase, Phase::Exited { code: 0 }, "{done:?}");
    assert_eq!(done.last_exit.as_deref(), Some("exited 0"));
    let observed = node.rt.observe(node.id).await.unwrap();
    assert_eq!(observed.networks, vec![inst.clone()]);
    let web_seen = observed.replicas.iter().find(|r| r.key == web.key).unwrap();
    assert_eq!(web_seen.phase, Phase::Running);

    // Undeploy: replicas first, then the network.
    node.rt.stop(node.id, &web.key).await.unwrap();
    node.rt.stop(node.id, &client.key).await.unwrap();
    node.rt.remove_network(node.id, &inst).await.unwrap();
    let observed = node.rt.observe(node.id).await.unwrap();
    assert!(observed.replicas.is_empty(), "{observed:?}");
    assert!(observed.networks.is_empty(), "{observed:?}");
}

#[tokio::test]
async fn container_config_is_mapped_from_the_spec() {
    let node = test_node().await;
    let inst = instance("mapped");
    node.rt.create_network(node.id, &inst).await.unwrap();

    // A host directory mapped in, and a log directory backed by the node's.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(conf.join("greeting"), "from-the-host\n").unwrap();
    let logs = dir.path().join("logs/db/1");
    let script = "cat /conf/greeting > /var/log/db/out.log && exec sleep 3600";
    let mut db = node.component("db", ComponentKind::Service, script);
    db.mounts = vec![Mount {
        host: conf.to_string_lossy().into_owned(),
        container: "/conf".into(),
        kind: MountType::Directory,
    }];
    db.log_dir = Some("/var/log/db".into());
    db.env.insert(
        "GREETING".into(),
        skerry_shared::manifest::EnvValue("hello world".into()),
    );
    db.resources = Some(Resources {
        cpu: Some(CpuRange {
            request: Some(Cpu::from_millicores(250)),
            limit: Some(Cpu::from_millicores(500)),
        }),
        memory: Some(MemoryRange {
            request: Some(Memory::mib(16)),
            limit: Some(Memory::mib(32)),
        }),
    });
    let mut db = node.spec(&inst, db, 1);
    db.log_dir_host = Some(logs.clone());
    node.rt.start(&db).await.unwrap();

    // The container read the mapped directory and wrote into the node's log directory.
    let out = logs.join("out.log");
    let deadline = Instant::now() + DEADLINE;
    while std::fs::read_to_string(&out).ok().as_deref() != Some("from-the-host\n") {
        assert!(
            Instant::now() < deadline,
            "{} never held the greeting",
            out.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let c = node.inspect(&db.key).await;
    let config = c.config.unwrap();
    assert_eq!(
        config.cmd.unwrap(),
        vec!["sh".to_owned(), "-c".into(), script.into()]
    );
    let env = config.env.unwrap();
    assert!(env.contains(&"GREETING=hello world".to_owned()), "{env:?}");
    assert!(env.contains(&format!("SKERRY_NODE={}", node.id)), "{env:?}");
    assert!(env.contains(&"SKERRY_REPLICA=1".to_owned()), "{env:?}");
    let l = config.labels.unwrap();
    assert_eq!(l[labels::INSTANCE], inst.as_str());
    assert_eq!(l[labels::COMPONENT], "db");
    assert_eq!(l[labels::REPLICA], "1");
    assert_eq!(l[labels::NODE], node.id.to_string());
    assert_eq!(l[labels::SPEC_HASH], db.spec_hash.to_hex());
    assert_eq!(l["io.skerry.kind"], "service");

    let host = c.host_config.unwrap();
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(host.cpu_shares, Some(256));
    assert_eq!(host.memory, Some(32 << 20));
    assert_eq!(host.memory_reservation, Some(16 << 20));
    assert_eq!(
        host.restart_policy.unwrap().name,
        Some(RestartPolicyNameEnum::UNLESS_STOPPED)
    );
    assert_eq!(
        host.network_mode.as_deref(),
        Some(network_name(node.id, &inst).as_str())
    );
    let networks = c.network_settings.unwrap().networks.unwrap();
    let endpoint = &networks[&network_name(node.id, &inst)];
    assert!(
        endpoint
            .aliases
            .as_ref()
            .is_some_and(|a| a.contains(&"db".to_owned())),
        "{endpoint:?}"
    );

    // on-failure, an init (never restarted), and host networking.
    let mut flaky = node.component("flaky", ComponentKind::Service, "exec sleep 3600");
    flaky.restart = Some(RestartPolicy::OnFailure);
    flaky.host_network = Some(true);
    let flaky = node.spec(&inst, flaky, 0);
    let once = node.spec(
        &inst,
        node.component("once", ComponentKind::Init, "exit 0"),
        0,
    );
    node.rt.start(&flaky).await.unwrap();
    node.rt.start(&once).await.unwrap();
    let host = node.inspect(&flaky.key).await.host_config.unwrap();
    assert_eq!(
        host.restart_policy.unwrap().name,
        Some(RestartPolicyNameEnum::ON_FAILURE)
    );
    assert_eq!(host.network_mode.as_deref(), Some("host"));
    let c = node.inspect(&once.key).await;
    assert_eq!(
        c.host_config.unwrap().restart_policy.unwrap().name,
        Some(RestartPolicyNameEnum::NO)
    );
    assert_eq!(c.config.unwrap().labels.unwrap()["io.skerry.kind"], "init");
}

/// An HTTP/1.0 GET of `/` on 127.0.0.1:`port`; the whole answer.
async fn http_get(port: u16) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn published_port_answers_on_the_host() {
    let node = test_node().await;
    let inst = instance("port");
    node.rt.create_network(node.id, &inst).await.unwrap();
    let port = free_port().unwrap();

    let mut web = node.component(
        "web",
        ComponentKind::Service,
        "mkdir -p /www && echo published-hello > /www/index.html && exec httpd -f -p 8080 -h /www",
    );
    web.ports = vec![Port {
        container: 8080,
        host: Some(port),
        expose: Expose::Nodeport,
    }];
    let web = node.spec(&inst, web, 0);
    node.rt.start(&web).await.unwrap();

    let deadline = Instant::now() + DEADLINE;
    loop {
        match http_get(port).await {
            Ok(answer) if answer.contains("published-hello") => break,
            other => assert!(
                Instant::now() < deadline,
                "127.0.0.1:{port} did not serve the page in {DEADLINE:?}: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The same host port for a second replica elsewhere cannot run, and leaves nothing.
    let other = instance("port");
    node.rt.create_network(node.id, &other).await.unwrap();
    let mut clash = node.component("web", ComponentKind::Service, "exec sleep 3600");
    clash.ports = web.component.ports.clone();
    let clash = node.spec(&other, clash, 0);
    match node.rt.start(&clash).await {
        Err(RuntimeError::Unrunnable(why)) => {
            assert!(why.contains(&port.to_string()), "{why}");
        }
        other => panic!("expected Unrunnable for a taken port, got {other:?}"),
    }
    let observed = node.rt.observe(node.id).await.unwrap();
    assert!(
        observed.replicas.iter().all(|r| r.key != clash.key),
        "{observed:?}"
    );
}

#[tokio::test]
async fn health_check_turns_unhealthy_then_healthy() {
    let node = test_node().await;
    let inst = instance("health");
    node.rt.create_network(node.id, &inst).await.unwrap();

    let mut svc = node.component("svc", ComponentKind::Service, "exec sleep 3600");
    svc.health = Some(Health {
        command: vec!["test".into(), "-f".into(), "/tmp/ready".into()],
        interval: Some(Span::from_millis(200)),
        timeout: Some(Span::from_secs(2)),
        retries: Some(1),
    });
    let svc = node.spec(&inst, svc, 0);
    node.rt.start(&svc).await.unwrap();

    // Before the first check it is Running (health "starting"); never Healthy yet.
    let first = node.rt.observe(node.id).await.unwrap();
    let first = first.replicas.iter().find(|r| r.key == svc.key).unwrap();
    assert!(
        matches!(first.phase, Phase::Running | Phase::Unhealthy),
        "{first:?}"
    );
    node.wait_for(&svc.key, "unhealthy", |r| r.phase == Phase::Unhealthy)
        .await;

    let out = std::process::Command::new("docker")
        .args([
            "exec",
            &container_name(node.id, &svc.key),
            "touch",
            "/tmp/ready",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let healthy = node
        .wait_for(&svc.key, "healthy", |r| r.phase == Phase::Healthy)
        .await;
    assert_eq!(healthy.restarts, 0);
}

#[tokio::test]
async fn init_exit_is_kept_and_a_service_is_restarted() {
    let node = test_node().await;
    let inst = instance("exits");
    node.rt.create_network(node.id, &inst).await.unwrap();

    let init = node.spec(
        &inst,
        node.component("migrate", ComponentKind::Init, "exit 3"),
        0,
    );
    node.rt.start(&init).await.unwrap();
    let seen = node.wait_for(&init.key, "exited 3", exited(3)).await;
    assert_eq!(seen.restarts, 0);
    assert_eq!(seen.last_exit.as_deref(), Some("exited 3"));

    let crashy = node.spec(
        &inst,
        node.component("crashy", ComponentKind::Service, "exit 1"),
        0,
    );
    node.rt.start(&crashy).await.unwrap();
    let seen = node
        .wait_for(&crashy.key, "restarted twice", |r| r.restarts >= 2)
        .await;
    assert!(!matches!(seen.phase, Phase::Healthy), "{seen:?}");

    // Meanwhile the init stayed down.
    let observed = node.rt.observe(node.id).await.unwrap();
    let again = observed
        .replicas
        .iter()
        .find(|r| r.key == init.key)
        .unwrap();
    assert_eq!(again.phase, Phase::Exited { code: 3 });
    assert_eq!(again.restarts, 0);
}

#[tokio::test]
async fn fresh_runtime_adopts_existing_replicas() {
    let node = test_node().await;
    let inst = instance("adopt");
    node.rt.create_network(node.id, &inst).await.unwrap();

    let mut specs = Vec::new();
    for replica in 0..2 {
        specs.push(node.spec(
            &inst,
            node.component("api", ComponentKind::Service, "exec sleep 3600"),
            replica,
        ));
    }
    specs.push(node.spec(
        &inst,
        node.component("seed", ComponentKind::Init, "exit 0"),
        0,
    ));
    for s in &specs {
        node.rt.start(s).await.unwrap();
    }
    // A container with the node's label but no replica labels is not Skerry's to adopt.
    node.rt
        .client()
        .create_container(
            Some(
                bollard::query_parameters::CreateContainerOptionsBuilder::new()
                    .name(&format!("stray-{}", unique("x")))
                    .build(),
            ),
            bollard::models::ContainerCreateBody {
                image: Some(node.image.clone()),
                cmd: Some(vec!["true".into()]),
                labels: Some([(labels::NODE.to_owned(), node.id.to_string())].into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    node.wait_for(&specs[2].key, "exited 0", exited(0)).await;

    // The agent restarts: a new runtime, no memory of what the old one did.
    let fresh = DockerRuntime::connect(options()).await.unwrap();
    let observed = fresh.observe(node.id).await.unwrap();
    let mut seen: Vec<(ReplicaKey, Digest)> = observed
        .replicas
        .iter()
        .map(|r| (r.key.clone(), r.spec_hash))
        .collect();
    seen.sort();
    let mut expected: Vec<(ReplicaKey, Digest)> =
        specs.iter().map(|s| (s.key.clone(), s.spec_hash)).collect();
    expected.sort();
    assert_eq!(seen, expected);
    assert_eq!(observed.networks, vec![inst.clone()]);
    // The same answer as the runtime that started them.
    assert_eq!(observed, node.rt.observe(node.id).await.unwrap());

    // Starting a replica again replaces its container: still one per key.
    fresh.start(&specs[0]).await.unwrap();
    let observed = fresh.observe(node.id).await.unwrap();
    assert_eq!(observed.replicas.len(), 3, "{observed:?}");
}

#[tokio::test]
async fn named_storage_outlives_containers_until_purged() {
    let node = test_node().await;
    let inst = instance("store");
    node.rt.create_network(node.id, &inst).await.unwrap();
    let storage = vec![Storage {
        name: name("data"),
        container: "/data".into(),
    }];

    let mut writer = node.component("app", ComponentKind::Init, "echo kept > /data/file");
    writer.storage = storage.clone();
    let writer = node.spec(&inst, writer, 0);
    node.rt.start(&writer).await.unwrap();
    node.wait_for(&writer.key, "exited 0", exited(0)).await;
    node.rt.stop(node.id, &writer.key).await.unwrap();
    let observed = node.rt.observe(node.id).await.unwrap();
    assert!(observed.replicas.is_empty(), "{observed:?}");

    let mut reader = node.component(
        "app",
        ComponentKind::Init,
        r#"test "$(cat /data/file)" = kept"#,
    );
    reader.storage = storage;
    let reader = node.spec(&inst, reader, 0);
    node.rt.start(&reader).await.unwrap();
    let seen = node
        .wait_for(&reader.key, "exited", |r| r.phase.exited())
        .await;
    assert_eq!(seen.phase, Phase::Exited { code: 0 }, "the file was lost");
    node.rt.stop(node.id, &reader.key).await.unwrap();

    let volume =
        skerry_edge::runtime::docker::spec::volume_name("skerry", node.id, &inst, &name("data"));
    let v = node.rt.client().inspect_volume(&volume).await.unwrap();
    let l = v.labels;
    assert_eq!(l[labels::INSTANCE], inst.as_str());
    assert_eq!(l[labels::NODE], node.id.to_string());
    assert_eq!(l["io.skerry.storage"], "data");

    node.rt
        .purge_storage(node.id, &inst, &name("data"))
        .await
        .unwrap();
    let gone = node.rt.client().inspect_volume(&volume).await;
    assert!(
        matches!(
            gone,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            })
        ),
        "{gone:?}"
    );
    node.rt
        .purge_storage(node.id, &inst, &name("data"))
        .await
        .unwrap();
}

#[tokio::test]
async fn instances_get_distinct_subnets_from_the_pool() {
    let node = test_node().await;
    let a = instance("net");
    let b = instance("net");
    node.rt.create_network(node.id, &a).await.unwrap();
    node.rt.create_network(node.id, &b).await.unwrap();
    // Idempotent: a second create keeps the network and its subnet.
    let node_id = node.id;
    let subnet_of = |inst: Name| {
        let client = node.rt.client().clone();
        async move {
            let n = client
                .inspect_network(&network_name(node_id, &inst), None)
                .await
                .unwrap();
            let l = n.labels.unwrap();
            assert_eq!(l[labels::INSTANCE], inst.as_str());
            assert_eq!(l[labels::NODE], node.id.to_string());
            let configs = n.ipam.unwrap().config.unwrap();
            assert_eq!(configs.len(), 1, "{configs:?}");
            Subnet::parse(configs[0].subnet.as_deref().unwrap()).unwrap()
        }
    };
    let sa = subnet_of(a.clone()).await;
    node.rt.create_network(node.id, &a).await.unwrap();
    assert_eq!(subnet_of(a.clone()).await, sa);
    let sb = subnet_of(b.clone()).await;

    let pool = Subnet::parse("10.213.0.0/16").unwrap();
    for s in [sa, sb] {
        assert_eq!(s.prefix(), 26, "{s}");
        assert!(pool.contains(&s), "{s} is outside {pool}");
    }
    assert!(!sa.overlaps(&sb), "{sa} and {sb}");

    let observed = node.rt.observe(node.id).await.unwrap();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(observed.networks, expected);

    for inst in [&a, &b] {
        node.rt.remove_network(node.id, inst).await.unwrap();
        node.rt.remove_network(node.id, inst).await.unwrap();
    }
    assert!(node.rt.observe(node.id).await.unwrap().networks.is_empty());
}

#[tokio::test]
async fn stop_is_idempotent_and_a_missing_image_is_unrunnable() {
    let node = test_node().await;
    let inst = instance("stop");
    node.rt.create_network(node.id, &inst).await.unwrap();

    let svc = node.spec(
        &inst,
        node.component("svc", ComponentKind::Service, "exec sleep 3600"),
        0,
    );
    node.rt.start(&svc).await.unwrap();
    node.wait_for(&svc.key, "running", |r| r.phase == Phase::Running)
        .await;
    node.rt.stop(node.id, &svc.key).await.unwrap();
    node.rt.stop(node.id, &svc.key).await.unwrap();

    // pull: always with no registry runs the node's copy (with a warning).
    let mut local = node.component("local", ComponentKind::Init, "exit 0");
    local.pull = Some(PullPolicy::Always);
    let local = node.spec(&inst, local, 0);
    node.rt.start(&local).await.unwrap();
    node.wait_for(&local.key, "exited 0", exited(0)).await;
    node.rt.stop(node.id, &local.key).await.unwrap();

    let never = ReplicaKey::new(&inst, &name("never-started"), 7);
    node.rt.stop(node.id, &never).await.unwrap();
    let observed = node.rt.observe(node.id).await.unwrap();
    assert!(observed.replicas.is_empty(), "{observed:?}");

    let missing = format!("skerry-test-missing:{}", unique("tag"));
    let mut ghost = node.component("ghost", ComponentKind::Service, "true");
    ghost.image = Some(missing.clone());
    let spec = node.spec(&inst, ghost.clone(), 0);
    match node.rt.start(&spec).await {
        Err(RuntimeError::Unrunnable(why)) => {
            assert!(why.contains(&missing), "{why}");
            assert!(why.contains("not on this node"), "{why}");
        }
        other => panic!("expected Unrunnable, got {other:?}"),
    }
    // if-missing tries a pull, which no registry answers here: a pull failure, which the
    // reconciler tries again under its backoff.
    ghost.pull = Some(PullPolicy::IfMissing);
    let spec = node.spec(&inst, ghost, 0);
    match node.rt.start(&spec).await {
        Err(RuntimeError::Pull(why)) => assert!(why.contains(&missing), "{why}"),
        other => panic!("expected a pull failure, got {other:?}"),
    }
    let observed = node.rt.observe(node.id).await.unwrap();
    assert!(observed.replicas.is_empty(), "{observed:?}");
}
