//! TLS for the API, against a real `skerry serve` process: beyond loopback the cloud needs
//! TLS or `--insecure-http`; with `--tls-name` it serves https with a certificate from its
//! CA (curl with `--cacert`, the CLI with `--ca`), a plain-http request fails, a handshake
//! that never comes is cut at the header timeout; a certificate of one's own in the keys
//! directory is used; the local node enrolls over https.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read as _;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use skerry_tests::cli::try_cli_at;
use skerry_tests::cloud::free_port;
use skerry_tests::http::healthz;
use skerry_tests::served::Served;
use skerry_tests::wait::wait_until;

/// How long a refused start may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `curl -sS ARGS...`: its exit code and output.
fn curl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--noproxy", "*"])
        .args(args)
        .output()
        .expect("curl runs (Debian's curl is on the machine)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether `GET https://127.0.0.1:PORT/healthz` answers 200 to curl trusting `ca`.
fn https_healthz(port: u16, ca: &Path) -> bool {
    let url = format!("https://127.0.0.1:{port}/healthz");
    let (code, _, _) = curl(&["-f", "-o", "/dev/null", "--cacert", path(ca), &url]);
    code == 0
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// The client arguments that carry the admin token, once the cloud has one.
fn token_args(served: &Served) -> Vec<String> {
    served
        .admin_token()
        .map(|t| vec!["--token".to_owned(), t])
        .unwrap_or_default()
}

#[test]
fn beyond_loopback_without_tls_or_insecure_http_the_cloud_refuses_to_start() {
    for listen in ["0.0.0.0", "[::]"] {
        let mut served = Served::new().unwrap();
        let addr = format!("{listen}:{}", free_port().unwrap());
        served
            .spawn(&["--listen", &addr, "--no-local-node"])
            .unwrap();
        let status = served
            .wait_exit(EXIT_TIMEOUT)
            .unwrap_or_else(|| panic!("skerry serve --listen {addr} kept running"));
        assert_eq!(status.code(), Some(2), "{}", served.logs());
        let stderr = served.stderr();
        for needle in [
            "beyond loopback",
            "--tls-name NAME",
            "--insecure-http",
            "api.crt",
            "api.key",
        ] {
            assert!(stderr.contains(needle), "{needle:?} not in:\n{stderr}");
        }
        // Refused before anything was opened.
        assert!(!served.data_dir().join("events.redb").exists());
    }
}

#[test]
fn with_insecure_http_it_starts_and_says_so() {
    let mut served = Served::new().unwrap();
    let port = free_port().unwrap();
    let addr = format!("0.0.0.0:{port}");
    served
        .spawn(&["--listen", &addr, "--insecure-http", "--no-local-node"])
        .unwrap();
    served.wait_ready(|| healthz(loopback(port))).unwrap();
    let stderr = served.stderr();
    // Once as a plain line on standard error, once in the log.
    assert!(
        stderr.contains("WARNING: --insecure-http: the API serves plain http on 0.0.0.0:"),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains("--insecure-http")),
        "{stderr}"
    );
}

#[test]
fn with_tls_names_it_serves_https_from_its_ca_and_plain_http_fails() {
    let mut served = Served::new().unwrap();
    let port = free_port().unwrap();
    let config = served.dir().join("serve.toml");
    std::fs::write(&config, "[http]\nheader_timeout = \"1s\"\n").unwrap();
    let addr = format!("0.0.0.0:{port}");
    served
        .spawn(&[
            "--config",
            path(&config),
            "--listen",
            &addr,
            "--tls-name",
            "127.0.0.1",
            "--tls-name",
            "cloud.example",
            "--no-local-node",
        ])
        .unwrap();
    let ca = served.keys_dir().join("ca.crt");
    served
        .wait_ready(|| ca.exists() && https_healthz(port, &ca))
        .unwrap();
    assert!(
        served.stderr().contains("https://0.0.0.0:"),
        "{}",
        served.stderr()
    );

    // Real curl, trusting the cloud's CA.
    let url = format!("https://127.0.0.1:{port}/healthz");
    let (code, body, err) = curl(&["-f", "--cacert", path(&ca), &url]);
    assert_eq!(code, 0, "{err}");
    assert!(!body.is_empty(), "healthz answered nothing");
    // The certificate is the CA's, for the names given: curl trusting nothing else fails,
    // and a name it was issued for verifies.
    let (code, _, err) = curl(&["-f", "-o", "/dev/null", &url]);
    assert_eq!(code, 60, "curl without --cacert: {err}");
    let named = format!("https://cloud.example:{port}/healthz");
    let resolve = format!("cloud.example:{port}:127.0.0.1");
    let (code, _, err) = curl(&[
        "-f",
        "-o",
        "/dev/null",
        "--cacert",
        path(&ca),
        "--resolve",
        &resolve,
        &named,
    ]);
    assert_eq!(code, 0, "{err}");

    // A plain-http request to the TLS port fails (its handshake does).
    assert!(!healthz(loopback(port)));
    let plain = format!("http://127.0.0.1:{port}/healthz");
    let (code, _, _) = curl(&["-f", "-o", "/dev/null", &plain]);
    assert_ne!(code, 0, "plain http to the TLS port answered");

    // The CLI with --ca, and through SKERRY_CA's absence without it.
    let https = format!("https://127.0.0.1:{port}");
    let token = token_args(&served);
    let mut args: Vec<&str> = token.iter().map(String::as_str).collect();
    args.extend(["--ca", path(&ca), "env", "list"]);
    let out = try_cli_at(&https, &args).unwrap();
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("local"), "{out}");
    let mut args: Vec<&str> = token.iter().map(String::as_str).collect();
    args.extend(["env", "list"]);
    let out = try_cli_at(&https, &args).unwrap();
    assert_eq!(
        out.code, 1,
        "without --ca the cloud's CA is not trusted: {out}"
    );
    // The CA through SKERRY_CA instead of --ca.
    let out = std::process::Command::new(skerry_tests::bin("skerry"))
        .args(["--cloud", &https])
        .args(&token)
        .args(["env", "list"])
        .env("SKERRY_CA", &ca)
        .env_remove("SKERRY_CLOUD")
        .env_remove("SKERRY_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("local"),
        "SKERRY_CA: {out:?}"
    );
    for bad in ["missing.crt", "serve.toml"] {
        let file = served.dir().join(bad);
        let out = try_cli_at(&https, &["--ca", path(&file), "env", "list"]).unwrap();
        assert_eq!(out.code, 2, "{out}");
        assert!(out.stderr.contains("--ca"), "{out}");
    }

    // An agent enrolls over https through the CA its token pins.
    assert_eq!(
        enroll_agent(&served, &https, &ca, &https),
        Enrollment::Enrolled
    );

    // A client that opens a connection and never starts its handshake is closed at the
    // header timeout (1 s here).
    let mut idle = TcpStream::connect(loopback(port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let read = idle.read(&mut buf);
    let waited = started.elapsed();
    assert!(
        matches!(read, Ok(0)) || read.is_err() && waited < Duration::from_secs(15),
        "{read:?} after {waited:?}"
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
}

/// Writes a certificate of the operator's own (from a CA that is not the cloud's) for
/// `127.0.0.1` and `cloud.example` into `keys`, with the key's `mode`; returns the path of
/// that CA's certificate.
fn own_certificate(dir: &Path, keys: &Path, mode: u32) -> std::path::PathBuf {
    let other = dir.join("other-ca");
    let pki = skerry_cloud::pki::Pki::load_or_create(&other).unwrap();
    let (cert, key) = pki
        .issue_server_cert(&["127.0.0.1".to_owned(), "cloud.example".to_owned()])
        .unwrap();
    std::fs::create_dir_all(keys).unwrap();
    std::fs::write(keys.join("api.crt"), cert).unwrap();
    std::fs::write(keys.join("api.key"), key).unwrap();
    std::fs::set_permissions(keys.join("api.key"), std::fs::Permissions::from_mode(mode)).unwrap();
    other.join("ca.crt")
}

#[test]
fn a_certificate_in_the_keys_directory_is_used_and_its_key_must_be_private() {
    let mut served = Served::new().unwrap();
    let keys = served.keys_dir();
    let own_ca = own_certificate(served.dir(), &keys, 0o644);
    let port = free_port().unwrap();
    let addr = format!("0.0.0.0:{port}");
    // A key readable by others is refused.
    served
        .spawn(&["--listen", &addr, "--no-local-node"])
        .unwrap();
    let status = served.wait_exit(EXIT_TIMEOUT).expect("it exits");
    assert_eq!(status.code(), Some(2), "{}", served.logs());
    assert!(served.stderr().contains("chmod 600"), "{}", served.stderr());

    std::fs::set_permissions(keys.join("api.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    served
        .spawn(&[
            "--listen",
            &addr,
            "--tls-name",
            "agents.example",
            "--no-local-node",
        ])
        .unwrap();
    served.wait_ready(|| https_healthz(port, &own_ca)).unwrap();
    // The own certificate, not one from the cloud's CA...
    let cloud_ca = keys.join("ca.crt");
    assert!(!https_healthz(port, &cloud_ca));
    // ...except for clients that ask for localhost (the local node does).
    let local = format!("https://localhost:{port}/healthz");
    let (code, _, err) = curl(&["-f", "-o", "/dev/null", "--cacert", path(&cloud_ca), &local]);
    assert_eq!(code, 0, "{err}");
    // ...and for the names given with --tls-name (for agents); the own name keeps the own.
    for (name, ca, verifies) in [
        ("agents.example", &cloud_ca, true),
        ("agents.example", &own_ca, false),
        ("cloud.example", &own_ca, true),
        ("cloud.example", &cloud_ca, false),
    ] {
        let url = format!("https://{name}:{port}/healthz");
        let resolve = format!("{name}:{port}:127.0.0.1");
        let (code, _, err) = curl(&[
            "-f",
            "-o",
            "/dev/null",
            "--cacert",
            path(ca),
            "--resolve",
            &resolve,
            &url,
        ]);
        assert_eq!(code == 0, verifies, "{name} with {}: {err}", ca.display());
    }
    let https = format!("https://127.0.0.1:{port}");
    let token = token_args(&served);
    let mut args: Vec<&str> = token.iter().map(String::as_str).collect();
    args.extend(["--ca", path(&own_ca), "env", "list"]);
    let out = try_cli_at(&https, &args).unwrap();
    assert_eq!(out.code, 0, "{out}");
    // An agent trusts only the CA its token pins: through the own certificate it refuses
    // the cloud (exit 3), through localhost it enrolls.
    match enroll_agent(&served, &https, &own_ca, &https) {
        Enrollment::Exited(code, stderr) => {
            assert_eq!(code, Some(3), "{stderr}");
            assert!(stderr.contains("is not trusted"), "{stderr}");
            assert!(
                stderr.contains("does not include the CA the token names"),
                "{stderr}"
            );
        }
        other => panic!("the agent enrolled through a certificate of another CA: {other:?}"),
    }
    let localhost = format!("https://localhost:{port}");
    assert_eq!(
        enroll_agent(&served, &https, &own_ca, &localhost),
        Enrollment::Enrolled
    );
}

/// How an agent's first run against an https cloud ended.
#[derive(Debug, PartialEq)]
enum Enrollment {
    /// It saved its identity.
    Enrolled,
    /// It exited first, with this code and standard error.
    Exited(Option<i32>, String),
}

/// Runs `skerry-edge run --cloud URL` with a fresh enrollment token for `local` (made by the
/// CLI trusting `ca`), until it has enrolled or has exited.
fn enroll_agent(served: &Served, cli_url: &str, ca: &Path, cloud_url: &str) -> Enrollment {
    let token = token_args(served);
    let mut args: Vec<&str> = token.iter().map(String::as_str).collect();
    args.extend(["--ca", path(ca), "node", "token", "--env", "local"]);
    let out = try_cli_at(cli_url, &args).unwrap();
    assert_eq!(out.code, 0, "{out}");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("gw.token");
    std::fs::write(&token_file, out.stdout.trim()).unwrap();
    let data = dir.path().join("data");
    let stderr = dir.path().join("stderr.log");
    let mut child = Command::new(skerry_tests::bin("skerry-edge"))
        .args(["run", "--data", path(&data), "--cloud", cloud_url])
        .args(["--token-file", path(&token_file), "--name", "gw-tls"])
        .args(["--runtime", "process"])
        .env_remove("SKERRY_TOKEN")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let identity = data.join("identity").join("node.json");
    let ended = skerry_tests::wait_for(Duration::from_secs(60), || {
        if identity.exists() {
            return Some(Enrollment::Enrolled);
        }
        let status = child.try_wait().ok().flatten()?;
        let text = std::fs::read_to_string(&stderr).unwrap_or_default();
        Some(Enrollment::Exited(status.code(), text))
    });
    let _ = child.kill();
    let _ = child.wait();
    ended.expect("the agent neither enrolled nor exited within 60 s")
}

/// Whether the local node has enrolled and linked: the cloud lists a node that is Normal.
fn local_node_listed(served: &Served, url: &str, ca: &Path) -> bool {
    let token = token_args(served);
    let mut args: Vec<&str> = token.iter().map(String::as_str).collect();
    args.extend(["--ca", path(ca), "-o", "json", "node", "list"]);
    let Ok(out) = try_cli_at(url, &args) else {
        return false;
    };
    out.code == 0
        && out
            .json()
            .ok()
            .and_then(|v| {
                v.as_array()
                    .map(|a| a.iter().any(|n| n["status"] == "Normal"))
            })
            .unwrap_or(false)
}

#[test]
fn the_local_node_enrolls_over_https_with_an_issued_or_an_own_certificate() {
    for own in [false, true] {
        let mut served = Served::new().unwrap();
        let port = free_port().unwrap();
        let addr = format!("0.0.0.0:{port}");
        let keys = served.keys_dir();
        let trust = if own {
            let ca = own_certificate(served.dir(), &keys, 0o600);
            served.spawn(&["--listen", &addr]).unwrap();
            ca
        } else {
            served
                .spawn(&["--listen", &addr, "--tls-name", "127.0.0.1"])
                .unwrap();
            keys.join("ca.crt")
        };
        served
            .wait_ready(|| trust.exists() && https_healthz(port, &trust))
            .unwrap();
        let url = format!("https://127.0.0.1:{port}");
        assert!(
            wait_until(Duration::from_secs(60), || local_node_listed(
                &served, &url, &trust
            )),
            "own certificate: {own}; the local node did not enroll:\n{}",
            served.logs()
        );
        assert!(
            served.data_dir().join("local-node").exists(),
            "{}",
            served.logs()
        );
    }
}
