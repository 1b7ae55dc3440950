//! App manifests (YAML) for tests: a valid app, and one refused manifest per refusal rule of
//! docs/manifest.md ("Validation"), each with the exact field the refusal must name.

use std::path::{Path, PathBuf};

use crate::error::Error;

/// The valid app's name.
pub const APP: &str = "weather";

/// A valid app of three components: `migrate` (an init with storage), `db` (a service with
/// a cluster port, resources, storage and a health check, after `migrate`) and `web` (a
/// service of two replicas with a node port, after `db`).
pub fn weather(version: &str) -> String {
    weather_with_description(version, "Weather station gateway apps")
}

/// [`weather`] with another description: the same version with other content.
pub fn weather_with_description(version: &str, description: &str) -> String {
    format!(
        r#"app: {APP}
version: {version}
description: {description}
components:
  - name: migrate
    kind: init
    image: weather-db:1
    command: ["/bin/migrate"]
    storage: [ {{ name: data, container: /data }} ]
  - name: db
    kind: service
    image: weather-db:1
    command: ["/bin/db", "--port", "6379"]
    depends_on: [migrate]
    env: {{ TZ: UTC }}
    resources:
      cpu: {{ request: 100m, limit: 500m }}
      memory: {{ request: 32Mi, limit: 64Mi }}
    ports:
      - {{ container: 6379, expose: cluster }}
    storage: [ {{ name: data, container: /data }} ]
    health:
      command: ["/bin/sh", "-c", "test -f /tmp/ready"]
      interval: 5s
      timeout: 2s
      retries: 3
  - name: web
    image: weather-web:1
    depends_on: [db]
    replicas: 2
    env: {{ DB_HOST: db }}
    ports:
      - {{ container: 8080, expose: nodeport }}
"#
    )
}

/// A valid app that runs as a native process: a service with a health check.
pub fn exec_app(version: &str) -> String {
    format!(
        r#"app: sensor
version: {version}
components:
  - name: reader
    exec: ["/usr/bin/python3", "reader.py"]
    env: {{ PORT: "9000" }}
    health:
      command: ["/bin/true"]
"#
    )
}

/// A manifest that must be refused as a whole.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The rule it breaks, for messages.
    pub rule: &'static str,
    pub yaml: String,
    /// The field the refusal must name.
    pub field: &'static str,
}

fn head(app: &str) -> String {
    format!("app: {app}\nversion: 1.0.0\ncomponents:\n")
}

/// One refused manifest per rule.
pub fn refusals() -> Vec<Refused> {
    vec![
        Refused {
            rule: "unknown field",
            yaml: head("bad-unknown")
                + "  - name: a\n    image: a:1\n  - name: b\n    imagee: b:1\n",
            field: "components[1].imagee",
        },
        Refused {
            rule: "cycle in depends_on",
            yaml: head("bad-cycle")
                + "  - name: a\n    image: a:1\n    depends_on: [b]\n  - name: b\n    image: b:1\n    depends_on: [a]\n",
            field: "components[0].depends_on",
        },
        Refused {
            rule: "dependency on a component that does not exist",
            yaml: head("bad-missing-dep")
                + "  - name: a\n    image: a:1\n  - name: b\n    image: b:1\n    depends_on: [nosuch]\n",
            field: "components[1].depends_on",
        },
        Refused {
            rule: "duplicate component name",
            yaml: head("bad-duplicate")
                + "  - name: a\n    image: a:1\n  - name: a\n    image: b:1\n",
            field: "components[1].name",
        },
        Refused {
            rule: "bad quantity",
            yaml: head("bad-quantity")
                + "  - name: a\n    image: a:1\n    resources: { memory: { request: 32Mi, limit: 12Qi } }\n",
            field: "components[0].resources.memory.limit",
        },
        Refused {
            rule: "limit below request",
            yaml: head("bad-limit")
                + "  - name: a\n    image: a:1\n  - name: b\n    image: b:1\n    resources: { cpu: { request: 500m, limit: 100m } }\n",
            field: "components[1].resources.cpu.limit",
        },
        Refused {
            rule: "bad cron expression",
            yaml: head("bad-cron")
                + "  - name: a\n    image: a:1\n  - name: b\n    kind: job\n    image: b:1\n    schedule: \"61 * * * *\"\n",
            field: "components[1].schedule",
        },
        Refused {
            rule: "image and exec together",
            yaml: head("bad-both") + "  - name: a\n    image: a:1\n    exec: [\"/bin/a\"]\n",
            field: "components[0]",
        },
        Refused {
            rule: "neither image nor exec",
            yaml: head("bad-neither")
                + "  - name: a\n    image: a:1\n  - name: b\n    replicas: 1\n",
            field: "components[1]",
        },
        Refused {
            rule: "a field the runtime does not take (ports on exec)",
            yaml: head("bad-exec-ports")
                + "  - name: a\n    exec: [\"/bin/a\"]\n    ports: [ { container: 80 } ]\n",
            field: "components[0].ports",
        },
        Refused {
            rule: "a field the kind does not take (schedule on a service)",
            yaml: head("bad-service-schedule")
                + "  - name: a\n    image: a:1\n    schedule: \"*/5 * * * *\"\n",
            field: "components[0].schedule",
        },
    ]
}

/// Writes `yaml` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, yaml: &str) -> Result<PathBuf, Error> {
    let path = dir.join(name);
    std::fs::write(&path, yaml).map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    Ok(path)
}

/// Writes the host profile (`firmware-profiles/x86-64-host.toml`) with its line `from`
/// replaced by `to` to `dir/name` and returns the path; `Err` when the profile has no
/// `from` (so a test cannot run on an unchanged profile).
pub fn host_profile_with(dir: &Path, name: &str, from: &str, to: &str) -> Result<PathBuf, Error> {
    let host = Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware-profiles/x86-64-host.toml");
    let text = std::fs::read_to_string(&host).map_err(|e| Error::io(host.display(), e))?;
    if !text.contains(from) {
        return Err(Error::unexpected(format!(
            "{} has no `{from}`",
            host.display()
        )));
    }
    write(dir, name, &text.replace(from, to))
}
