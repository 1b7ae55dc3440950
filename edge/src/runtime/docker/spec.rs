//! From a [`ReplicaSpec`] to the engine's container config, and the names of what the
//! Docker runtime creates. Pure: no engine calls, so every row of the mapping table in
//! [`super`] is checked by a unit test.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, DeviceMapping, EndpointSettings, HealthConfig, HostConfig, Mount,
    MountType, NetworkingConfig, PortBinding as DockerPortBinding, RestartPolicy as DockerRestart,
    RestartPolicyNameEnum,
};
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::manifest::{ComponentKind, MountType as SkerryMount, RestartPolicy};
use skerry_shared::planner::ReplicaKey;

use super::super::secrets::SecretTarget;
use super::super::{ReplicaSpec, RuntimeError, labels};

/// The label that says what kind of component a container runs (`service`, `init`, `job`).
pub const KIND_LABEL: &str = "io.skerry.kind";
/// The label that names a volume's storage.
pub const STORAGE_LABEL: &str = "io.skerry.storage";

/// The first 8 hex digits of a node id: two agents that share one engine (the cloud's
/// local node and an agent on the same host) never share a name.
pub fn node_tag(node: NodeId) -> String {
    let mut id = node.0.simple().to_string();
    id.truncate(8);
    id
}

/// The instance's network: `skerry-{node}.{instance}`.
pub fn network_name(node: NodeId, instance: &Name) -> String {
    format!("skerry-{}.{instance}", node_tag(node))
}

/// A replica's container: `skerry-{node}.{instance}.{component}.{replica}`. Names may
/// contain `-` but never `.`, so the dots keep (`a-b`, `c`) and (`a`, `b-c`) apart.
pub fn container_name(node: NodeId, key: &ReplicaKey) -> String {
    format!(
        "skerry-{}.{}.{}.{}",
        node_tag(node),
        key.instance,
        key.component,
        key.replica
    )
}

/// An instance's named storage on a node: `{prefix}-{node}.{instance}.{storage}` (the
/// same separator rule as [`container_name`]).
pub fn volume_name(prefix: &str, node: NodeId, instance: &Name, storage: &Name) -> String {
    format!("{prefix}-{}.{instance}.{storage}", node_tag(node))
}

pub fn kind_word(kind: ComponentKind) -> &'static str {
    match kind {
        ComponentKind::Service => "service",
        ComponentKind::Init => "init",
        ComponentKind::Job => "job",
    }
}

/// Docker's restart policy: `always` → `unless-stopped` (it survives the agent's death and
/// a reboot, but not a deliberate stop), `on-failure` → `on-failure`, `never` → `no`.
/// An init or a job is never restarted by the engine.
pub fn restart_policy(kind: ComponentKind, restart: RestartPolicy) -> RestartPolicyNameEnum {
    match (kind, restart) {
        (ComponentKind::Init | ComponentKind::Job, _) => RestartPolicyNameEnum::NO,
        (ComponentKind::Service, RestartPolicy::Always) => RestartPolicyNameEnum::UNLESS_STOPPED,
        (ComponentKind::Service, RestartPolicy::OnFailure) => RestartPolicyNameEnum::ON_FAILURE,
        (ComponentKind::Service, RestartPolicy::Never) => RestartPolicyNameEnum::NO,
    }
}

/// Docker's relative CPU weight for a request: 1024 per core, at least 2 (the engine's
/// minimum).
pub fn cpu_shares(millicores: u64) -> i64 {
    let shares = millicores.saturating_mul(1024) / 1000;
    i64::try_from(shares).unwrap_or(i64::MAX).max(2)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn millis_to_nanos(ms: u64) -> i64 {
    to_i64(ms.saturating_mul(1_000_000))
}

/// The named volumes a replica mounts: (volume name, container path).
pub fn volumes(spec: &ReplicaSpec, prefix: &str) -> Vec<(String, String)> {
    spec.storage
        .iter()
        .filter_map(|s| {
            let path = s.container.clone()?;
            Some((
                volume_name(prefix, spec.node, &spec.key.instance, &s.name),
                path,
            ))
        })
        .collect()
}

/// The labels of a replica's container.
pub fn container_labels(spec: &ReplicaSpec) -> HashMap<String, String> {
    HashMap::from([
        (labels::INSTANCE.to_owned(), spec.key.instance.to_string()),
        (labels::COMPONENT.to_owned(), spec.key.component.to_string()),
        (labels::REPLICA.to_owned(), spec.key.replica.to_string()),
        (labels::NODE.to_owned(), spec.node.to_string()),
        (labels::SPEC_HASH.to_owned(), spec.spec_hash.to_hex()),
        (
            KIND_LABEL.to_owned(),
            kind_word(spec.component.kind).to_owned(),
        ),
    ])
}

/// The container config for one replica. `image` is the reference to run (the
/// component's); `volume_prefix` names the named storage.
pub fn container_body(
    spec: &ReplicaSpec,
    volume_prefix: &str,
) -> Result<ContainerCreateBody, RuntimeError> {
    let component = &spec.component;
    let image = component.image.clone().ok_or_else(|| {
        RuntimeError::Unrunnable(format!(
            "component {} has no image: the Docker runtime cannot run it",
            component.name
        ))
    })?;
    let host_network = component.host_network();

    let mut host = HostConfig {
        restart_policy: Some(DockerRestart {
            name: Some(restart_policy(component.kind, component.restart())),
            maximum_retry_count: None,
        }),
        ..Default::default()
    };

    // Resources.
    if let Some(resources) = &component.resources {
        if let Some(cpu) = &resources.cpu {
            if let Some(limit) = cpu.limit {
                host.nano_cpus = Some(to_i64(limit.millicores().saturating_mul(1_000_000)));
            }
            if let Some(request) = cpu.request {
                host.cpu_shares = Some(cpu_shares(request.millicores()));
            }
        }
        if let Some(memory) = &resources.memory {
            if let Some(limit) = memory.limit {
                host.memory = Some(to_i64(limit.bytes()));
            }
            if let Some(request) = memory.request {
                host.memory_reservation = Some(to_i64(request.bytes()));
            }
        }
    }

    // Mounts: host files, named storage, the log directory.
    let mut mounts = Vec::new();
    let mut devices = Vec::new();
    for m in &component.mounts {
        match m.kind {
            SkerryMount::File | SkerryMount::Directory | SkerryMount::Socket => {
                mounts.push(bind(&m.host, &m.container));
            }
            SkerryMount::CharDevice | SkerryMount::BlockDevice => devices.push(DeviceMapping {
                path_on_host: Some(m.host.clone()),
                path_in_container: Some(m.container.clone()),
                cgroup_permissions: Some("rwm".to_owned()),
            }),
        }
    }
    for (volume, target) in volumes(spec, volume_prefix) {
        mounts.push(Mount {
            target: Some(target),
            source: Some(volume),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        });
    }
    if let (Some(host_dir), Some(log_dir)) = (&spec.log_dir_host, &component.log_dir) {
        mounts.push(bind(&host_dir.to_string_lossy(), log_dir));
    }
    // Secret files: a tmpfs file of the agent's, read-only (the value is in no layer and
    // not in the container's configuration).
    for s in &spec.secrets {
        if let (SecretTarget::File(path), Some(host_file)) = (&s.target, &s.host_file) {
            mounts.push(Mount {
                read_only: Some(true),
                ..bind(&host_file.to_string_lossy(), path)
            });
        }
    }
    if !mounts.is_empty() {
        host.mounts = Some(mounts);
    }
    if !devices.is_empty() {
        host.devices = Some(devices);
    }

    // Network and ports.
    let mut exposed = None;
    let mut networking = None;
    if host_network {
        host.network_mode = Some("host".to_owned());
    } else {
        let network = network_name(spec.node, &spec.key.instance);
        host.network_mode = Some(network.clone());
        networking = Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network,
                EndpointSettings {
                    aliases: Some(vec![component.name.to_string()]),
                    ..Default::default()
                },
            )])),
        });
        if !spec.ports.is_empty() {
            exposed = Some(
                spec.ports
                    .iter()
                    .map(|p| format!("{}/tcp", p.container))
                    .collect(),
            );
        }
        let bindings: HashMap<String, Option<Vec<DockerPortBinding>>> = spec
            .ports
            .iter()
            .filter_map(|p| {
                let host_port = p.host?;
                Some((
                    format!("{}/tcp", p.container),
                    Some(vec![DockerPortBinding {
                        host_ip: Some("0.0.0.0".to_owned()),
                        host_port: Some(host_port.to_string()),
                    }]),
                ))
            })
            .collect();
        if !bindings.is_empty() {
            host.port_bindings = Some(bindings);
        }
    }

    let healthcheck = component.health.as_ref().map(|h| HealthConfig {
        test: Some(
            std::iter::once("CMD".to_owned())
                .chain(h.command.iter().cloned())
                .collect(),
        ),
        interval: Some(millis_to_nanos(h.interval_ms())),
        timeout: Some(millis_to_nanos(h.timeout_ms())),
        retries: Some(i64::from(h.retries())),
        ..Default::default()
    });

    Ok(ContainerCreateBody {
        image: Some(image),
        cmd: component.command.clone(),
        env: Some(
            spec.env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .chain(spec.secrets.iter().filter_map(|s| match &s.target {
                    SecretTarget::Env(var) => Some(format!(
                        "{var}={}",
                        String::from_utf8_lossy(s.value.as_bytes())
                    )),
                    SecretTarget::File(_) => None,
                }))
                .collect(),
        ),
        labels: Some(container_labels(spec)),
        exposed_ports: exposed,
        healthcheck,
        host_config: Some(host),
        networking_config: networking,
        ..Default::default()
    })
}

fn bind(host: &str, container: &str) -> Mount {
    Mount {
        target: Some(container.to_owned()),
        source: Some(host.to_owned()),
        typ: Some(MountType::BIND),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use skerry_shared::hash::Digest;
    use skerry_shared::ids::NodeId;
    use skerry_shared::manifest::{
        Component, CpuRange, Health, MemoryRange, Mount as SkerryMountSpec, Resources,
    };
    use skerry_shared::quantity::{Cpu, Duration, Memory};

    use super::*;
    use crate::runtime::{PortBinding, StorageMount};

    fn name(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    fn spec(component: Component) -> ReplicaSpec {
        ReplicaSpec {
            node: NodeId::random(),
            key: ReplicaKey::new(&name("weather"), &component.name, 1),
            spec_hash: Digest::of(b"spec"),
            env: BTreeMap::from([("TZ".to_owned(), "UTC".to_owned())]),
            ports: Vec::new(),
            storage: Vec::new(),
            log_dir_host: None,
            secrets: Vec::new(),
            component,
        }
    }

    #[test]
    fn names_keep_hyphenated_parts_apart() {
        let a = ReplicaKey::new(&name("a-b"), &name("c"), 0);
        let b = ReplicaKey::new(&name("a"), &name("b-c"), 0);
        let node: NodeId = "0123abcd-0000-4000-8000-000000000000".parse().unwrap();
        assert_ne!(container_name(node, &a), container_name(node, &b));
        assert_eq!(container_name(node, &a), "skerry-0123abcd.a-b.c.0");
        assert_eq!(network_name(node, &name("a-b")), "skerry-0123abcd.a-b");
        assert_eq!(
            volume_name("skerry", node, &name("a"), &name("data")),
            "skerry-0123abcd.a.data"
        );
    }

    #[test]
    fn restart_policies_map_to_dockers() {
        use ComponentKind::*;
        assert_eq!(
            restart_policy(Service, RestartPolicy::Always),
            RestartPolicyNameEnum::UNLESS_STOPPED
        );
        assert_eq!(
            restart_policy(Service, RestartPolicy::OnFailure),
            RestartPolicyNameEnum::ON_FAILURE
        );
        assert_eq!(
            restart_policy(Service, RestartPolicy::Never),
            RestartPolicyNameEnum::NO
        );
        assert_eq!(
            restart_policy(Init, RestartPolicy::Always),
            RestartPolicyNameEnum::NO
        );
        assert_eq!(
            restart_policy(Job, RestartPolicy::OnFailure),
            RestartPolicyNameEnum::NO
        );
    }

    #[test]
    fn cpu_shares_are_proportional_with_a_floor() {
        assert_eq!(cpu_shares(1000), 1024);
        assert_eq!(cpu_shares(500), 512);
        assert_eq!(cpu_shares(1), 2);
        assert_eq!(cpu_shares(0), 2);
    }

    #[test]
    fn full_component_maps_every_field() {
        let mut component = Component::image(name("db"), "weather-db:1");
        component.command = Some(vec!["/bin/db".into(), "--port".into(), "6379".into()]);
        component.resources = Some(Resources {
            cpu: Some(CpuRange {
                request: Some(Cpu::from_millicores(100)),
                limit: Some(Cpu::from_millicores(500)),
            }),
            memory: Some(MemoryRange {
                request: Some(Memory::mib(32)),
                limit: Some(Memory::mib(64)),
            }),
        });
        component.mounts = vec![
            SkerryMountSpec {
                host: "/dev/ttyUSB0".into(),
                container: "/dev/ttyUSB0".into(),
                kind: SkerryMount::CharDevice,
            },
            SkerryMountSpec {
                host: "/etc/gw.conf".into(),
                container: "/etc/gw.conf".into(),
                kind: SkerryMount::File,
            },
        ];
        component.log_dir = Some("/var/log/weather".into());
        component.health = Some(Health {
            command: vec!["/bin/sh".into(), "-c".into(), "test -f /tmp/ready".into()],
            interval: Some(Duration::from_secs(5)),
            timeout: Some(Duration::from_secs(2)),
            retries: Some(3),
        });
        let mut s = spec(component);
        s.ports = vec![
            PortBinding {
                container: 6379,
                host: None,
            },
            PortBinding {
                container: 8080,
                host: Some(18080),
            },
        ];
        s.storage = vec![StorageMount {
            name: name("data"),
            container: Some("/data".into()),
        }];
        s.log_dir_host = Some(PathBuf::from("/var/lib/skerry/logs/weather/db/1"));

        let body = container_body(&s, "skerry").unwrap();
        assert_eq!(body.image.as_deref(), Some("weather-db:1"));
        assert_eq!(
            body.cmd,
            Some(vec!["/bin/db".into(), "--port".into(), "6379".into()])
        );
        assert_eq!(body.env, Some(vec!["TZ=UTC".to_owned()]));
        let labels = body.labels.unwrap();
        assert_eq!(labels[labels::INSTANCE], "weather");
        assert_eq!(labels[labels::COMPONENT], "db");
        assert_eq!(labels[labels::REPLICA], "1");
        assert_eq!(labels[labels::SPEC_HASH], Digest::of(b"spec").to_hex());
        assert_eq!(labels[KIND_LABEL], "service");
        let mut exposed = body.exposed_ports.unwrap();
        exposed.sort();
        assert_eq!(exposed, vec!["6379/tcp".to_owned(), "8080/tcp".to_owned()]);

        let health = body.healthcheck.unwrap();
        assert_eq!(
            health.test.unwrap(),
            vec!["CMD", "/bin/sh", "-c", "test -f /tmp/ready"]
        );
        assert_eq!(health.interval, Some(5_000_000_000));
        assert_eq!(health.timeout, Some(2_000_000_000));
        assert_eq!(health.retries, Some(3));

        let host = body.host_config.unwrap();
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.cpu_shares, Some(102));
        assert_eq!(host.memory, Some(64 << 20));
        assert_eq!(host.memory_reservation, Some(32 << 20));
        let network = network_name(s.node, &name("weather"));
        assert_eq!(host.network_mode.as_deref(), Some(network.as_str()));
        let bindings = host.port_bindings.unwrap();
        assert_eq!(bindings.len(), 1);
        let b = bindings["8080/tcp"].as_ref().unwrap();
        assert_eq!(b[0].host_port.as_deref(), Some("18080"));
        assert_eq!(b[0].host_ip.as_deref(), Some("0.0.0.0"));
        let devices = host.devices.unwrap();
        assert_eq!(devices[0].path_on_host.as_deref(), Some("/dev/ttyUSB0"));
        assert_eq!(devices[0].cgroup_permissions.as_deref(), Some("rwm"));
        let mounts = host.mounts.unwrap();
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[0].typ, Some(MountType::BIND));
        assert_eq!(mounts[1].typ, Some(MountType::VOLUME));
        let volume = volume_name("skerry", s.node, &name("weather"), &name("data"));
        assert_eq!(mounts[1].source.as_deref(), Some(volume.as_str()));
        assert_eq!(mounts[1].target.as_deref(), Some("/data"));
        assert_eq!(mounts[2].target.as_deref(), Some("/var/log/weather"));
        assert_eq!(
            host.restart_policy.unwrap().name,
            Some(RestartPolicyNameEnum::UNLESS_STOPPED)
        );

        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(endpoints[&network].aliases, Some(vec!["db".to_owned()]));
    }

    #[test]
    fn host_network_has_no_instance_network_and_no_bindings() {
        let mut component = Component::image(name("probe"), "probe:1");
        component.host_network = Some(true);
        let mut s = spec(component);
        s.ports = vec![PortBinding {
            container: 9100,
            host: Some(9100),
        }];
        let body = container_body(&s, "skerry").unwrap();
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("host"));
        assert_eq!(host.port_bindings, None);
        assert_eq!(body.exposed_ports, None);
        assert_eq!(body.networking_config, None);
    }

    #[test]
    fn init_is_never_restarted_and_exec_component_is_refused() {
        let mut component = Component::image(name("migrate"), "db:1");
        component.kind = ComponentKind::Init;
        let body = container_body(&spec(component), "skerry").unwrap();
        assert_eq!(body.labels.unwrap()[KIND_LABEL], "init");
        assert_eq!(
            body.host_config.unwrap().restart_policy.unwrap().name,
            Some(RestartPolicyNameEnum::NO)
        );

        let mut exec = Component::image(name("native"), "x");
        exec.image = None;
        exec.exec = Some(vec!["/bin/true".into()]);
        assert!(matches!(
            container_body(&spec(exec), "skerry"),
            Err(RuntimeError::Unrunnable(_))
        ));
    }
}
