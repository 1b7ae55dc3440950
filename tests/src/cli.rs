//! Running the real `skerry` binary as an operator would: [`cli`] runs one command to its
//! end; [`CliStream`] runs a long-lived one (`events --follow`) and reads its lines.
//!
//! Every command gets `--cloud URL` first; `SKERRY_CLOUD`, `SKERRY_TOKEN` and `SKERRY_CA`
//! are removed from its environment, so the test's environment cannot change what it talks
//! to. [`cli`] then sets `SKERRY_TOKEN` to the cloud's admin token ([`Cloud::token`]);
//! [`cli_as`] runs as another token, or none; [`cli_at`] sends none (for URLs that are not
//! a Skerry cloud).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::binaries::bin;
use crate::cloud::Cloud;
use crate::error::Error;
use crate::wait::wait_for;

/// How long one CLI command may run before the test gives up on it.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// What a finished command did.
#[derive(Debug, Clone)]
pub struct CliOutput {
    /// The command line, for messages.
    pub command: String,
    /// The exit status; -1 when a signal ended it.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// Standard output as JSON (for `-o json`).
    pub fn json(&self) -> Result<Value, Error> {
        serde_json::from_str(&self.stdout)
            .map_err(|e| Error::unexpected(format!("stdout is not JSON ({e}):\n{self}")))
    }

    /// Standard output read as a table: one map per row, from the header's column names
    /// (`LAST SEEN`) to the trimmed cells. Columns start where the header's names start;
    /// names are separated by two spaces or more.
    pub fn table(&self) -> Vec<BTreeMap<String, String>> {
        let mut lines = self.stdout.lines().filter(|l| !l.trim().is_empty());
        let Some(header) = lines.next() else {
            return Vec::new();
        };
        let header: Vec<char> = header.chars().collect();
        let mut columns: Vec<(usize, String)> = Vec::new();
        let mut i = 0;
        while i < header.len() {
            if header[i] == ' ' {
                i += 1;
                continue;
            }
            let start = i;
            // A name ends at two spaces in a row, or at the end of the line.
            while i < header.len()
                && !(header[i] == ' ' && header.get(i + 1).is_none_or(|c| *c == ' '))
            {
                i += 1;
            }
            columns.push((start, header[start..i].iter().collect()));
        }
        lines
            .map(|line| {
                let row: Vec<char> = line.chars().collect();
                let cell = |from: usize, to: usize| -> String {
                    let (from, to) = (from.min(row.len()), to.min(row.len()));
                    row[from..to].iter().collect::<String>().trim().to_owned()
                };
                columns
                    .iter()
                    .enumerate()
                    .map(|(k, (start, name))| {
                        let end = columns.get(k + 1).map_or(row.len(), |(s, _)| *s);
                        (name.clone(), cell(*start, end))
                    })
                    .collect()
            })
            .collect()
    }
}

impl fmt::Display for CliOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "$ {}\nexit {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

fn command(url: &str, token: Option<&str>, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("skerry"));
    cmd.arg("--cloud")
        .arg(url)
        .args(args)
        .env_remove("SKERRY_CLOUD")
        .env_remove("SKERRY_TOKEN")
        .env_remove("SKERRY_CA")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    // Through the environment, so that the command line a failure shows holds no secret
    // and an argument given by the test (`--token`) still wins.
    if let Some(token) = token {
        cmd.env("SKERRY_TOKEN", token);
    }
    cmd
}

fn describe(url: &str, args: &[&str]) -> String {
    format!("skerry --cloud {url} {}", args.join(" "))
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut text);
        }
        String::from_utf8_lossy(&text).into_owned()
    })
}

/// Runs `skerry --cloud URL ARGS...` to its end (at most [`CLI_TIMEOUT`]).
pub fn try_cli_at(url: &str, args: &[&str]) -> Result<CliOutput, Error> {
    try_cli_with(url, None, args)
}

/// Runs `skerry --cloud URL ARGS...` with `SKERRY_TOKEN` set to `token` (if any).
pub fn try_cli_with(url: &str, token: Option<&str>, args: &[&str]) -> Result<CliOutput, Error> {
    let described = describe(url, args);
    let mut child = command(url, token, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(format!("spawn {described}"), e))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_for(CLI_TIMEOUT, || child.try_wait().ok().flatten());
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(Error::unexpected(format!(
            "{described} did not finish within {CLI_TIMEOUT:?}"
        )));
    };
    Ok(CliOutput {
        command: described,
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Runs `skerry --cloud URL ARGS...` against any URL (a closed port, say).
///
/// # Panics
/// When the binary cannot be run or does not finish in time.
pub fn cli_at(url: &str, args: &[&str]) -> CliOutput {
    match try_cli_at(url, args) {
        Ok(out) => out,
        Err(e) => panic!("{e}"),
    }
}

/// Runs `skerry --cloud URL ARGS...` against `cloud`.
///
/// # Panics
/// When the binary cannot be run or does not finish in time.
pub fn cli(cloud: &Cloud, args: &[&str]) -> CliOutput {
    cli_as(cloud, Some(cloud.token()), args)
}

/// Runs `skerry --cloud URL ARGS...` against `cloud` with `token` (`None`: no token at all).
///
/// # Panics
/// When the binary cannot be run or does not finish in time.
pub fn cli_as(cloud: &Cloud, token: Option<&str>, args: &[&str]) -> CliOutput {
    match try_cli_with(&cloud.url(), token, args) {
        Ok(out) => out,
        Err(e) => panic!("{e}"),
    }
}

/// A long-lived `skerry` command whose standard output is read line by line while it runs.
/// Killed on drop.
#[derive(Debug)]
pub struct CliStream {
    command: String,
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl CliStream {
    /// Starts `skerry --cloud URL ARGS...` (its standard error is discarded).
    pub fn start(cloud: &Cloud, args: &[&str]) -> Result<CliStream, Error> {
        let url = cloud.url();
        let described = describe(&url, args);
        let mut child = command(&url, Some(cloud.token()), args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::io(format!("spawn {described}"), e))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::unexpected("no stdout pipe"))?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(CliStream {
            command: described,
            child,
            lines,
            seen: Vec::new(),
        })
    }

    /// Reads lines until one satisfies `matches`, within `timeout`; returns that line.
    pub fn wait_for_line(
        &mut self,
        timeout: Duration,
        mut matches: impl FnMut(&str) -> bool,
    ) -> Result<String, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(Error::unexpected(format!(
                        "{}: no matching line within {timeout:?}; lines so far:\n{}",
                        self.command,
                        self.seen.join("\n")
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait().ok().flatten();
                    return Err(Error::unexpected(format!(
                        "{}: its output ended (exit {status:?}) before a matching line; lines:\n{}",
                        self.command,
                        self.seen.join("\n")
                    )));
                }
            }
        }
    }

    /// Every line read so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// Kills the command and reaps it.
    pub fn kill(&mut self) -> Result<(), Error> {
        if self.child.try_wait().ok().flatten().is_none() {
            self.child
                .kill()
                .map_err(|e| Error::io(format!("kill {}", self.command), e))?;
        }
        self.child
            .wait()
            .map_err(|e| Error::io(format!("wait for {}", self.command), e))?;
        Ok(())
    }
}

impl Drop for CliStream {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Writes `yaml` to `DIR/APP.yaml` and runs `skerry app publish -f` on that file.
pub fn publish(cloud: &Cloud, dir: &std::path::Path, app: &str, yaml: &str) -> Result<(), Error> {
    let file = dir.join(format!("{app}.yaml"));
    std::fs::write(&file, yaml).map_err(|e| Error::io(file.display(), e))?;
    let out = cli(cloud, &["app", "publish", "-f", &file.to_string_lossy()]);
    if out.code != 0 {
        return Err(Error::unexpected(format!("app publish {app}: {out}")));
    }
    Ok(())
}

/// `skerry deploy APP@VERSION --env ENV --name INSTANCE --node NODE`.
pub fn deploy(
    cloud: &Cloud,
    app_at_version: &str,
    env: &str,
    instance: &str,
    node: &str,
) -> Result<(), Error> {
    let out = cli(
        cloud,
        &[
            "deploy",
            app_at_version,
            "--env",
            env,
            "--name",
            instance,
            "--node",
            node,
        ],
    );
    if out.code != 0 {
        return Err(Error::unexpected(format!("deploy {instance}: {out}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_read_by_the_headers_columns() {
        let out = CliOutput {
            command: String::new(),
            code: 0,
            stdout: "NAME   ID   LAST SEEN   LAG\n\
                     gw-1   a    never       0\n\
                     g      bb   2026-11-21  12\n"
                .to_owned(),
            stderr: String::new(),
        };
        let rows = out.table();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["NAME"], "gw-1");
        assert_eq!(rows[0]["LAST SEEN"], "never");
        assert_eq!(rows[1]["ID"], "bb");
        assert_eq!(rows[1]["LAG"], "12");
    }
}
