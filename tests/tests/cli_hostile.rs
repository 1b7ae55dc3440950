//! The `skerry` CLI under hostile or careless input, run for real against a real `skerry
//! serve` (and, for `--cloud`, against a web server that is not Skerry):
//! - a manifest over the size limit is refused before it is sent, naming the file, its
//!   size and the limit (exit 2); a request body over the cloud's limit that the cloud cuts
//!   off is exit 2 naming the limit, not "cannot reach the cloud";
//! - relative times are bounded (`--since 3000000d` names its input and the bound; nothing
//!   before 1970), for `events` and `logs`;
//! - a `--cloud` that answers outside Skerry's JSON shape (python's `http.server`) is
//!   "not a Skerry cloud", exit 1, not exit 4 for its 404;
//! - with `-o json`, usage errors are JSON too (`--help` and `--version` stay text);
//! - `skerry events` prints at most 1,000 events (`--limit` up to 100,000, `--after` to go
//!   on), says on standard error when more match, and an unknown `--instance` is exit 4;
//! - `--ttl` and `--node NODE=WEIGHT` are bounded and named.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use skerry_tests::{CliOutput, Cloud, bin, cli, cli_at, free_port, wait_for};

/// The error body a `-o json` command printed on standard error.
fn error_json(out: &CliOutput) -> Value {
    serde_json::from_str(&out.stderr)
        .unwrap_or_else(|e| panic!("stderr is not one JSON value ({e}):\n{out}"))
}

fn expect(out: &CliOutput, code: i32, says: &[&str]) {
    assert_eq!(out.code, code, "{out}");
    for s in says {
        assert!(out.stderr.contains(s), "stderr lacks {s:?}:\n{out}");
    }
}

#[test]
fn a_manifest_over_the_limit_is_refused_before_it_is_sent() {
    let cloud = Cloud::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    let mut yaml = String::from("app: big\nversion: 1.0.0\ndescription: \"");
    yaml.push_str(&"x".repeat(10 * 1024 * 1024));
    yaml.push_str("\"\ncomponents:\n  - name: web\n    image: web:1\n");
    std::fs::write(&big, &yaml).unwrap();
    let size = yaml.len().to_string();
    let file = big.to_str().unwrap();
    let out = cli(&cloud, &["app", "publish", "-f", file]);
    expect(&out, 2, &[file, &size, "1048576", "1 MiB"]);
    assert!(!out.stderr.contains("cannot reach"), "{out}");
    let out = cli(&cloud, &["-o", "json", "app", "publish", "-f", file]);
    assert_eq!(out.code, 2, "{out}");
    let body = error_json(&out);
    assert_eq!(body["error"]["field"], "-f", "{out}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(&size),
        "{out}"
    );
    // Nothing was published.
    let out = cli(&cloud, &["app", "show", "big"]);
    assert_eq!(out.code, 4, "{out}");
}

/// Runs `skerry --cloud URL env create big` with 40 `--entry` values of 120 KiB (an
/// argument may be at most 128 KiB), a JSON body of about 4.8 MB, in a shell whose stack
/// limit lets a command take that many arguments; returns its exit code and stderr.
fn create_with_a_large_body(url: &str) -> (Option<i32>, String) {
    let script = r#"ulimit -s unlimited || exit 99
bin=$1; url=$2
e="$(head -c 122880 /dev/zero | tr '\0' a).example:80"
set --
i=0
while [ $i -lt 40 ]; do set -- "$@" --entry "$e"; i=$((i+1)); done
exec "$bin" --cloud "$url" env create big "$@""#;
    let output = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(bin("skerry"))
        .arg(url)
        .env_remove("SKERRY_CLOUD")
        .env_remove("SKERRY_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr)
}

/// A JSON body far over the cloud's body limit: the cloud answers 413 (before its fix it
/// closed the connection under the body, and the CLI said "cannot reach the cloud ...
/// Broken pipe", exit 1); the user is told the body was too large, exit 2, with the limit.
#[test]
fn a_request_body_over_the_clouds_limit_is_exit_2_naming_it() {
    let cloud = Cloud::start().unwrap();
    for _ in 0..3 {
        let (code, stderr) = create_with_a_large_body(&cloud.url());
        assert_eq!(code, Some(2), "{stderr}");
        assert!(!stderr.contains("cannot reach"), "{stderr}");
        assert!(stderr.contains("1048576"), "{stderr}");
    }
    let out = cli(&cloud, &["env", "show", "big"]);
    assert_eq!(out.code, 4, "{out}");
}

/// A server that closes the connection while a large body is still being sent (as the
/// cloud did before it drained bodies over its limit, and as it still does for a body
/// declared over 16 MiB, or a proxy may): a TCP listener that reads 64 KiB of each request
/// and closes. The CLI names the limit, exit 2, instead of "cannot reach the cloud".
#[test]
fn a_connection_closed_under_a_large_body_is_exit_2_naming_the_limit() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = vec![0u8; 64 * 1024];
            let _ = std::io::Read::read(&mut stream, &mut buf);
            drop(stream);
        }
    });
    let (code, stderr) = create_with_a_large_body(&url);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(!stderr.contains("cannot reach"), "{stderr}");
    assert!(
        stderr.contains("the cloud closed the connection while it was being sent"),
        "{stderr}"
    );
    assert!(stderr.contains("1048576"), "{stderr}");
}

#[test]
fn relative_times_are_bounded_and_named() {
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    for cmd in [&["events"][..], &["logs", "web"][..]] {
        let with = |since: &str| {
            let mut args = cmd.to_vec();
            args.extend(["--since", since]);
            cli(&cloud, &args)
        };
        // More than 100 years: refused by the CLI, naming the input and the bound.
        let out = with("3000000d");
        expect(&out, 2, &["--since", "\"3000000d\"", "36500 days"]);
        assert!(!out.stderr.contains("-6187"), "{out}");
        // Within 100 years but before 1970.
        let out = with("30000d");
        expect(&out, 2, &["\"30000d\"", "1970"]);
        let out = with("1969-12-31T23:59:59Z");
        expect(&out, 2, &["\"1969-12-31T23:59:59Z\"", "1970"]);
    }
    // A bound that holds is still accepted.
    let out = cli(&cloud, &["events", "--since", "36h"]);
    assert_eq!(out.code, 0, "{out}");
    // -o json names the flag as the field.
    let out = cli(&cloud, &["-o", "json", "events", "--since", "3000000d"]);
    assert_eq!(out.code, 2, "{out}");
    assert_eq!(error_json(&out)["error"]["field"], "--since", "{out}");
}

/// `python3 -m http.server` on a free port, serving `dir`; killed on drop.
struct Foreign {
    child: Child,
    url: String,
}

impl Foreign {
    fn start(dir: &std::path::Path) -> Foreign {
        let port = free_port().unwrap();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .arg("--directory")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        let addr = format!("127.0.0.1:{port}");
        wait_for(Duration::from_secs(30), || {
            TcpStream::connect(&addr).ok().map(|_| ())
        })
        .expect("python's http.server did not listen");
        Foreign {
            child,
            url: format!("http://{addr}"),
        }
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_cloud_url_that_is_not_skerry_is_named_so() {
    let dir = tempfile::tempdir().unwrap();
    // One path answers 200 with a file, where the API answers JSON.
    std::fs::create_dir_all(dir.path().join("api/v1")).unwrap();
    std::fs::write(
        dir.path().join("api/v1/nodes"),
        "<html><body>not an API</body></html>",
    )
    .unwrap();
    let web = Foreign::start(dir.path());
    // A 404 in text/html: not "not found" (exit 4), but not Skerry (exit 1).
    for args in [&["env", "show", "plant"][..], &["env", "list"], &["events"]] {
        let out = cli_at(&web.url, args);
        expect(
            &out,
            1,
            &["is not a Skerry cloud", &web.url, "404", "text/html"],
        );
    }
    let out = cli_at(&web.url, &["-o", "json", "env", "list"]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(error_json(&out)["error"]["code"], "not_skerry", "{out}");
    // A 200 that is not JSON (python serves the file as application/octet-stream).
    let out = cli_at(&web.url, &["node", "list"]);
    expect(
        &out,
        1,
        &["is not a Skerry cloud", "200", "application/octet-stream"],
    );
    // A POST, which python answers 501 in text/html.
    let out = cli_at(&web.url, &["env", "create", "plant"]);
    expect(&out, 1, &["is not a Skerry cloud", "501", "text/html"]);
    // A real cloud's 404 is still exit 4.
    let cloud = Cloud::start().unwrap();
    let out = cli(&cloud, &["env", "show", "plant"]);
    assert_eq!(out.code, 4, "{out}");
}

#[test]
fn usage_errors_are_json_with_o_json() {
    let cloud = Cloud::start().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["-o", "json", "env", "list", "--bogus"], "--bogus"),
        (&["--output=json", "env", "create"], "<NAME>"),
        (&["-ojson", "events", "--since", "yesterday"], "yesterday"),
        (&["env", "list", "-o", "json", "--bogus"], "--bogus"),
        (&["--output", "json", "nope"], "nope"),
        (&["-o", "json", "events", "--limit", "abc"], "abc"),
    ];
    for (args, says) in cases {
        let out = cli(&cloud, args);
        assert_eq!(out.code, 2, "{out}");
        let body = error_json(&out);
        assert_eq!(body["error"]["code"], "usage", "{out}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{out}");
        assert!(!message.starts_with("error:"), "{out}");
        assert!(out.stdout.is_empty(), "{out}");
    }
    let out = cli(&cloud, &["-o", "json", "events", "--since", "yesterday"]);
    assert_eq!(error_json(&out)["error"]["field"], "--since", "{out}");
    // Text without -o json, as before.
    let out = cli(&cloud, &["env", "list", "--bogus"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.starts_with("error: "), "{out}");
    // --help and --version stay text, exit 0.
    let out = cli(&cloud, &["-o", "json", "--help"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("Usage:"), "{out}");
    let out = cli(&cloud, &["-o", "json", "--version"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.starts_with("skerry "), "{out}");
}

/// Events per enrollment token issued in [`events_are_limited_as_documented`].
const TOKENS: usize = 1_100;

#[test]
fn events_are_limited_as_documented() {
    let cloud = Cloud::start().unwrap();
    let api = cloud.api().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    for _ in 0..TOKENS {
        api.enrollment_token("plant", None).unwrap();
    }
    let total = api.event_count().unwrap();
    assert!(total > TOKENS, "{total}");

    // The default: the first 1,000, oldest first; the rest named on standard error.
    let out = cli(&cloud, &["events"]);
    assert_eq!(out.code, 0, "{out}");
    let rows = out.table();
    assert_eq!(rows.len(), 1_000, "{}", out.stderr);
    assert_eq!(rows[0]["SEQ"], "1");
    assert_eq!(rows[999]["SEQ"], "1000");
    assert!(out.stderr.contains("--after 1000"), "{}", out.stderr);
    assert!(out.stderr.contains("--limit"), "{}", out.stderr);
    let out = cli(&cloud, &["-o", "json", "events"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json().unwrap().as_array().unwrap().len(), 1_000);
    assert!(out.stderr.contains("--after 1000"), "{}", out.stderr);

    // --after goes on from there, to the end: nothing more to say.
    let out = cli(&cloud, &["events", "--after", "1000"]);
    assert_eq!(out.code, 0, "{out}");
    let rows = out.table();
    assert_eq!(rows.len(), total - 1_000, "{}", out.stderr);
    assert_eq!(rows[0]["SEQ"], "1001");
    assert!(out.stderr.is_empty(), "{out}");

    // --limit: more, or fewer.
    let out = cli(&cloud, &["-o", "json", "events", "--limit", "100000"]);
    assert_eq!(out.json().unwrap().as_array().unwrap().len(), total);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    let out = cli(&cloud, &["events", "--limit", "5"]);
    assert_eq!(out.table().len(), 5, "{out}");
    assert!(out.stderr.contains("--after 5"), "{out}");
    // Beyond the documented maximum, or zero: refused, naming the flag and the range.
    for bad in ["100001", "0", "-1", "99999999999999999999"] {
        let out = cli(&cloud, &["events", "--limit", bad]);
        expect(&out, 2, &["--limit", "100000"]);
    }

    // An unknown instance is not found, as an unknown node is.
    let out = cli(&cloud, &["events", "--node", "nope"]);
    assert_eq!(out.code, 4, "{out}");
    let out = cli(&cloud, &["events", "--instance", "nope"]);
    assert_eq!(out.code, 4, "{out}");
}

#[test]
fn durations_and_weights_are_bounded_and_named() {
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    // --ttl: at most 365 days, named; a number too large for any duration likewise.
    let out = cli(
        &cloud,
        &["node", "token", "--env", "plant", "--ttl", "3000000d"],
    );
    expect(&out, 2, &["365 days"]);
    let out = cli(
        &cloud,
        &[
            "node",
            "token",
            "--env",
            "plant",
            "--ttl",
            "99999999999999999999999d",
        ],
    );
    expect(&out, 2, &["--ttl", "99999999999999999999999d"]);
    let out = cli(
        &cloud,
        &["node", "token", "--env", "plant", "--ttl", "365d"],
    );
    assert_eq!(out.code, 0, "{out}");
    // More --set overrides than a component may have variables: refused before anything is
    // sent (before the fix the cloud answered that the app is not published, exit 4).
    let sets: Vec<String> = (0..257).map(|i| format!("web.V{i}=1")).collect();
    let mut args = vec!["deploy", "a@1.0.0", "--env", "plant", "--name", "a"];
    for set in &sets {
        args.extend(["--set", set]);
    }
    let out = cli(&cloud, &args);
    expect(
        &out,
        2,
        &["257 --set overrides", "at most 256", "(field: --set)"],
    );
    // A weight outside 1-1000, however large, is named as such.
    for w in ["0", "1001", "99999999999"] {
        let node = format!("gw-1={w}");
        let out = cli(
            &cloud,
            &[
                "deploy", "a@1.0.0", "--env", "plant", "--name", "a", "--node", &node,
            ],
        );
        expect(&out, 2, &["--node", &node, "1 to 1000"]);
    }
}
