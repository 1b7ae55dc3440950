//! Secrets end to end: a real `skerry serve`, a real agent with the Docker runtime and one
//! with the process runtime, real containers from an image built `FROM scratch`.
//!
//! A component sees its secret as an environment variable and as a file, also on a node
//! that enrolled after the secret was set; a new
//! `secret set` restarts the replicas that use it; a deploy that names a missing secret is
//! refused with the field; a secret in use is not deleted. And the value, plain, hex or
//! base64, is in no byte of the cloud's data directory, the agents' data directories
//! (their journals), any log, `events -o json`, `status`, or `docker inspect` of the
//! container that has it as a file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use skerry_tests::agent::Agent;
use skerry_tests::images::{busybox_image, unique};
use skerry_tests::{Cloud, cli, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The forms of `value` that must never be stored or printed: itself, its hex and its
/// base64 at each of the three alignments it may start at inside a longer encoded text
/// (the characters that depend on the value's bytes only).
fn forms(value: &str) -> Vec<String> {
    let mut out = vec![value.to_owned(), hex_of(value.as_bytes())];
    for offset in 0..3 {
        let mut bytes = vec![0u8; offset];
        bytes.extend_from_slice(value.as_bytes());
        let encoded = base64(&bytes);
        // Characters touching a byte before the value, and the last group's, which touch
        // the bytes after it, are left out.
        let skip = [0, 2, 3][offset];
        let whole = bytes.len() / 3 * 4;
        out.push(encoded[skip..whole].to_owned());
    }
    out
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every file under `dir` that holds one of `needles`, with the needle.
fn files_holding(dir: &Path, needles: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file()
                && let Ok(bytes) = std::fs::read(&path)
            {
                for n in needles {
                    if contains(&bytes, n.as_bytes()) {
                        found.push(format!("{} holds {n}", path.display()));
                    }
                }
            }
        }
    }
    found
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker").args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn set_secret(cloud: &Cloud, dir: &Path, name: &str, value: &str, extra: &[&str]) -> Value {
    let file = dir.join(format!("{name}.value"));
    std::fs::write(&file, value).unwrap();
    let mut args = vec!["secret", "set", name, "--from-file", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-o", "json"]);
    let out = cli(cloud, &args);
    std::fs::remove_file(&file).unwrap();
    assert_eq!(out.code, 0, "{out}");
    out.json().unwrap()
}

fn container_id(name: &str) -> Option<String> {
    let (ok, out) = docker(&["inspect", "--format", "{{.Id}}", name]);
    ok.then(|| out.trim().to_owned())
}

fn exec_in(container: &str, script: &str) -> Option<String> {
    let (ok, out) = docker(&["exec", container, "sh", "-c", script]);
    ok.then_some(out)
}

fn manifest(image: &str) -> String {
    format!(
        r#"app: vault
version: 1.0.0
components:
  - name: web
    image: {image}
    command: ["sh", "-c", "exec sleep 3600"]
    secrets:
      - {{ name: db-password, env: DB_PASSWORD }}
      - {{ name: tls, file: /run/secrets/tls }}
"#
    )
}

fn process_manifest(out_dir: &Path) -> String {
    format!(
        r#"app: vaultp
version: 1.0.0
components:
  - name: job
    exec: ["/bin/busybox", "sh", "-c", "echo \"$DB_PASSWORD\" > \"$OUT/env.$$\"; cat \"$SKERRY_SECRETS_DIR/tls\" > \"$OUT/file.$$\"; stat -c %a \"$SKERRY_SECRETS_DIR\" > \"$OUT/mode.$$\"; echo \"$SKERRY_SECRETS_DIR\" > \"$OUT/dir\"; exec sleep 3600"]
    env: {{ OUT: "{}" }}
    secrets:
      - {{ name: db-password, env: DB_PASSWORD }}
      - {{ name: tls, file: /run/secrets/tls }}
"#,
        out_dir.display()
    )
}

fn read_latest(dir: &Path, prefix: &str) -> Option<String> {
    let mut newest: Option<(std::time::SystemTime, String)> = None;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) {
            let t = e.metadata().ok()?.modified().ok()?;
            let text = std::fs::read_to_string(e.path()).ok()?;
            if newest.as_ref().is_none_or(|(n, _)| t >= *n) {
                newest = Some((t, text));
            }
        }
    }
    newest.map(|(_, t)| t.trim().to_owned())
}

#[test]
fn a_secret_reaches_containers_and_processes_and_is_stored_nowhere_in_the_clear() {
    let image = busybox_image("1").unwrap();
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let agent = Agent::enroll(&cloud, "plant", "gw-1").unwrap();
    let node = agent.node_id().unwrap();
    let tag: String = node.chars().take(8).collect();
    let work = tempfile::tempdir().unwrap();

    let password = format!("pw-{}", unique("Zq9"));
    let rotated = format!("pw2-{}", unique("Xk7"));
    let tls = format!("-----TLS {}-----", unique("Lm3"));

    // The secrets: listed by name, version and environment, never by value.
    let set = set_secret(&cloud, work.path(), "db-password", &password, &[]);
    assert_eq!(set["version"], 1);
    set_secret(&cloud, work.path(), "tls", &tls, &["--env", "plant"]);
    // A node that enrolls after the secrets were set gets them too (the delivery
    // controller).
    let proc_agent =
        Agent::enroll_with(&cloud, "plant", "gw-2", &["--runtime", "process"]).unwrap();
    let list = cli(&cloud, &["secret", "list", "-o", "json"]);
    assert_eq!(list.code, 0, "{list}");
    let listed = list.json().unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["db-password", "tls"]);
    assert!(!list.stdout.contains(&password));

    // A deploy that names a missing secret is refused with the field, exit 2.
    let missing = work.path().join("missing.yaml");
    std::fs::write(
        &missing,
        format!("app: nosecret\nversion: 1.0.0\ncomponents:\n  - name: a\n    image: {image}\n    command: [\"sleep\", \"60\"]\n    secrets: [{{ name: nope, env: NOPE }}]\n"),
    )
    .unwrap();
    assert_eq!(
        cli(&cloud, &["app", "publish", "-f", missing.to_str().unwrap()]).code,
        0
    );
    let refused = cli(
        &cloud,
        &[
            "deploy",
            "nosecret@1.0.0",
            "--env",
            "plant",
            "--name",
            "ns",
            "--node",
            "gw-1",
        ],
    );
    assert_eq!(refused.code, 2, "{refused}");
    assert!(
        refused.stderr.contains("components[0].secrets[0].name"),
        "{refused}"
    );

    // Deploy to the Docker node.
    let yaml = work.path().join("vault.yaml");
    std::fs::write(&yaml, manifest(&image)).unwrap();
    assert_eq!(
        cli(&cloud, &["app", "publish", "-f", yaml.to_str().unwrap()]).code,
        0
    );
    let instance = unique("vault");
    let out = cli(
        &cloud,
        &[
            "deploy",
            "vault@1.0.0",
            "--env",
            "plant",
            "--name",
            &instance,
            "--node",
            "gw-1",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    let container = format!("skerry-{tag}.{instance}.web.0");
    let seen = wait_for(CONVERGE, || {
        let env = exec_in(&container, "printf %s \"$DB_PASSWORD\"")?;
        let file = exec_in(&container, "cat /run/secrets/tls")?;
        Some((env, file))
    })
    .unwrap_or_else(|| {
        panic!(
            "the container did not run with its secrets\n{}",
            agent.logs()
        )
    });
    assert_eq!(seen, (password.clone(), tls.clone()));
    // The file is a read-only bind of a tmpfs file, not part of the container's config.
    let (_, inspect) = docker(&["inspect", &container]);
    for f in forms(&tls) {
        assert!(
            !inspect.contains(&f),
            "docker inspect shows the file secret"
        );
    }
    assert!(
        exec_in(&container, "echo x > /run/secrets/tls").is_none(),
        "the secret file is writable"
    );
    let first_id = container_id(&container).unwrap();

    // Deleting a secret in use is refused, naming the instance.
    let del = cli(&cloud, &["secret", "delete", "db-password"]);
    assert_ne!(del.code, 0, "{del}");
    assert!(del.stderr.contains(&instance), "{del}");

    // The process runtime: an env var, and a file in a private directory.
    let out_dir = tempfile::tempdir().unwrap();
    let pyaml = work.path().join("vaultp.yaml");
    std::fs::write(&pyaml, process_manifest(out_dir.path())).unwrap();
    assert_eq!(
        cli(&cloud, &["app", "publish", "-f", pyaml.to_str().unwrap()]).code,
        0
    );
    let pinstance = unique("vaultp");
    let out = cli(
        &cloud,
        &[
            "deploy",
            "vaultp@1.0.0",
            "--env",
            "plant",
            "--name",
            &pinstance,
            "--node",
            "gw-2",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    // The process writes its files one after the other, each created before it is
    // written: wait for the last one, and for the values themselves.
    let expected = (password.clone(), tls.clone(), "700".to_owned());
    let secret_dir = wait_for(CONVERGE, || {
        let got = (
            read_latest(out_dir.path(), "env.")?,
            read_latest(out_dir.path(), "file.")?,
            read_latest(out_dir.path(), "mode.")?,
        );
        let dir = read_latest(out_dir.path(), "dir")?;
        (got == expected && !dir.is_empty()).then_some(dir)
    })
    .unwrap_or_else(|| {
        panic!(
            "the process did not run with its secrets: env {:?}, file {:?}, mode {:?}, dir {:?}\n{}",
            read_latest(out_dir.path(), "env."),
            read_latest(out_dir.path(), "file."),
            read_latest(out_dir.path(), "mode."),
            read_latest(out_dir.path(), "dir"),
            proc_agent.logs()
        )
    });

    // Rotation: a new version restarts the replicas that use it, with the new value.
    let set = set_secret(&cloud, work.path(), "db-password", &rotated, &[]);
    assert_eq!(set["version"], 2);
    let restarted = wait_for(CONVERGE, || {
        let id = container_id(&container)?;
        let env = exec_in(&container, "printf %s \"$DB_PASSWORD\"")?;
        (id != first_id && env == rotated).then_some(())
    });
    assert!(
        restarted.is_some(),
        "the container was not restarted with the new value\n{}",
        agent.logs()
    );
    let rotated_seen = wait_for(CONVERGE, || {
        (read_latest(out_dir.path(), "env.")? == rotated).then_some(())
    });
    assert!(
        rotated_seen.is_some(),
        "the process was not restarted with the new value\n{}",
        proc_agent.logs()
    );

    // Status shows the replicas, never a value.
    let status = cli(&cloud, &["status", &instance, "-o", "json"]);
    assert_eq!(status.code, 0, "{status}");

    // Undeploy: the secret files go with the replicas.
    for i in [&instance, &pinstance] {
        let out = cli(&cloud, &["undeploy", i]);
        assert_eq!(out.code, 0, "{out}");
    }
    let host_dir = format!("/dev/shm/skerry-secrets/{node}/{instance}.web.0");
    assert!(
        wait_for(CONVERGE, || (!Path::new(&host_dir).exists()
            && !Path::new(&secret_dir).exists())
        .then_some(()))
        .is_some(),
        "secret files are left behind"
    );
    // Once no instance uses it, the secret can be deleted.
    let del = cli(&cloud, &["secret", "delete", "db-password"]);
    assert_eq!(del.code, 0, "{del}");

    // The value, in any form, in no byte of what was stored or printed.
    let events = cli(&cloud, &["events", "-o", "json", "--limit", "1000"]);
    assert_eq!(events.code, 0, "{events}");
    assert!(
        events.stdout.contains("secret.delivered"),
        "{}",
        events.stdout
    );
    let mut needles = Vec::new();
    for v in [&password, &rotated, &tls] {
        needles.extend(forms(v));
    }
    let mut leaks = files_holding(&cloud.data_dir(), &needles);
    leaks.extend(files_holding(&agent.data_dir(), &needles));
    leaks.extend(files_holding(&proc_agent.data_dir(), &needles));
    let (cloud_log, log1, log2) = (cloud.whole_logs(), agent.logs(), proc_agent.logs());
    for (what, text) in [
        ("events -o json", events.stdout.as_str()),
        ("status -o json", status.stdout.as_str()),
        ("the cloud's log", cloud_log.as_str()),
        ("gw-1's log", log1.as_str()),
        ("gw-2's log", log2.as_str()),
    ] {
        for n in &needles {
            if text.contains(n.as_str()) {
                leaks.push(format!("{what} holds {n}"));
            }
        }
    }
    assert!(leaks.is_empty(), "{leaks:#?}");
}
