//! The enrollment token stays out of `ps`: a real `skerry serve` and real `skerry-edge run`
//! processes, one enrolled with `SKERRY_TOKEN`, one with `--token-file FILE`. Neither
//! token is in the agent's command line (`/proc/PID/cmdline`), in any file under its data
//! directory (identity, journal, its own log), or in what it logs; a later run with the
//! token file removed still starts, since an enrolled node reads no token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use skerry_tests::{Cloud, bin, cli, wait_for};

/// A `skerry-edge run` started by the test, its standard error in `log`, killed on drop.
struct Run {
    child: Child,
    log: PathBuf,
}

impl Run {
    fn start(args: &[&str], env: &[(&str, &str)], log: &Path) -> Run {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(bin("skerry-edge"))
            .args(args)
            .env_remove("SKERRY_TOKEN")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Run {
            child,
            log: log.to_owned(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for `text` in the log, and for the process to still run.
    fn wait_for_log(&mut self, text: &str) {
        let seen = wait_for(Duration::from_secs(60), || {
            if let Some(status) = self.child.try_wait().ok().flatten() {
                panic!("the agent exited ({status}):\n{}", self.log());
            }
            self.log().contains(text).then_some(())
        });
        assert!(
            seen.is_some(),
            "no {text:?} in the agent's log:\n{}",
            self.log()
        );
    }

    fn cmdline(&self) -> Vec<u8> {
        std::fs::read(format!("/proc/{}/cmdline", self.child.id())).unwrap()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        self.stop();
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path).is_ok_and(|b| contains(&b, needle)) {
                found.push(path);
            }
        }
    }
    found
}

fn token(cloud: &Cloud) -> String {
    let out = cli(cloud, &["node", "token", "--env", "plant"]);
    assert_eq!(out.code, 0, "{out}");
    out.stdout.trim().to_owned()
}

/// The token's secret: the part that must never be seen.
fn secret(token: &str) -> &str {
    token.split('.').nth(2).unwrap()
}

/// The token is in neither the command line, nor the data directory, nor the log.
fn assert_not_kept(run: &Run, data: &Path, token: &str) {
    assert!(data.join("identity").join("node.json").exists());
    for needle in [token, secret(token)] {
        assert!(
            !contains(&run.cmdline(), needle),
            "the token is in the agent's command line"
        );
        assert_eq!(files_holding(data, needle), Vec::<PathBuf>::new());
        assert!(!run.log().contains(needle), "the token is logged");
    }
}

fn node_listed(cloud: &Cloud, name: &str) -> bool {
    let out = cli(cloud, &["node", "show", name]);
    out.code == 0
}

#[test]
fn the_token_is_taken_from_the_environment_or_a_file_and_never_kept() {
    let cloud = Cloud::start().unwrap();
    assert_eq!(cli(&cloud, &["env", "create", "plant"]).code, 0);
    let url = cloud.url();
    let dir = tempfile::tempdir().unwrap();

    // SKERRY_TOKEN.
    let data = dir.path().join("by-env");
    let by_env = token(&cloud);
    let args = [
        "run",
        "--data",
        data.to_str().unwrap(),
        "--cloud",
        &url,
        "--name",
        "gw-env",
        "--runtime",
        "process",
    ];
    let mut run = Run::start(
        &args,
        &[("SKERRY_TOKEN", &by_env)],
        &dir.path().join("env.log"),
    );
    run.wait_for_log("connected to the cloud");
    assert!(node_listed(&cloud, "gw-env"));
    assert_not_kept(&run, &data, &by_env);
    // A later run with the variable still set (a unit's environment) starts as well.
    run.stop();
    let mut run = Run::start(
        &args,
        &[("SKERRY_TOKEN", &by_env)],
        &dir.path().join("env2.log"),
    );
    run.wait_for_log("resumed from the journal");
    assert_not_kept(&run, &data, &by_env);

    // --token-file FILE, outside the data directory.
    let data = dir.path().join("by-file");
    let by_file = token(&cloud);
    let file = dir.path().join("gw-file.token");
    std::fs::write(&file, format!("{by_file}\n")).unwrap();
    let args = [
        "run",
        "--data",
        data.to_str().unwrap(),
        "--cloud",
        &url,
        "--token-file",
        file.to_str().unwrap(),
        "--name",
        "gw-file",
        "--runtime",
        "process",
    ];
    let log = dir.path().join("file.log");
    let mut run = Run::start(&args, &[], &log);
    run.wait_for_log("connected to the cloud");
    assert!(node_listed(&cloud, "gw-file"));
    assert_not_kept(&run, &data, &by_file);
    // The token is spent: the file may go, and the same command line starts the node.
    run.stop();
    std::fs::remove_file(&file).unwrap();
    let mut run = Run::start(&args, &[], &dir.path().join("file2.log"));
    run.wait_for_log("resumed from the journal");
    run.wait_for_log("connected to the cloud");
    assert_not_kept(&run, &data, &by_file);
}
