//! `logs`: lines per second from files in a component's `log_dir` until the cloud answers
//! them to a query, and the agent's peak RSS, beside `cat` of the same files to /dev/null.
//!
//! A running container declares `log_dir: /logs`. Two files of numbered lines are written
//! beside it on the same file system and then renamed into the host directory the agent
//! mounts there, so all the lines appear at one instant, when the clock starts. The clock
//! stops when `GET /api/v1/logs` (paged with `after`) has returned every line. The agent
//! runs with the `x86-64-host` profile (`log_rate` 4 MiB/s of compressed frames).

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use super::report::{Better, Figure, Report};
use super::stage::Stage;
use crate::images::{busybox_image, unique};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Lines in all (half in each of two files).
    #[arg(long, default_value_t = 500_000)]
    pub lines: u64,
}

/// Writes `lines` numbered lines of about 60 bytes to `path`.
fn write_file(path: &std::path::Path, name: &str, lines: u64) -> anyhow::Result<u64> {
    let mut text = String::with_capacity(lines as usize * 64);
    for i in 1..=lines {
        let _ = writeln!(
            text,
            "{name} {i} GET /api/readings?sensor={} 200 {}us",
            i % 97,
            (i * 7919) % 100_000
        );
    }
    std::fs::write(path, &text)?;
    Ok(text.len() as u64)
}

/// Reads the instance's lines after `after`, page by page; returns how many and the next
/// cursor.
fn drain(stage: &Stage, instance: &str, mut after: u64) -> anyhow::Result<(u64, u64)> {
    let mut count = 0;
    loop {
        let page: Value = stage.api.get_json(&format!(
            "/api/v1/logs?instance={instance}&component=writer&after={after}&limit=10000"
        ))?;
        let lines = page["lines"].as_array().map_or(0, Vec::len) as u64;
        if let Some(last) = page["lines"]
            .as_array()
            .and_then(|l| l.last())
            .and_then(|l| l["cursor"].as_u64())
        {
            after = last;
        }
        count += lines;
        if lines < 10_000 {
            return Ok((count, after));
        }
    }
}

pub fn run(args: &Args) -> anyhow::Result<Report> {
    let total = args.lines.max(2);
    let image = busybox_image("1")?;
    let stage = Stage::start("bench-logs", "x86-64-host")?;
    stage.publish(&format!(
        "app: quiet\nversion: 1.0.0\ncomponents:\n  - name: writer\n    image: {image}\n    log_dir: /logs\n    command: {}\n",
        super::stage::idle_command()
    ))?;
    let instance = unique("quiet");
    let started = Instant::now();
    stage.deploy("quiet", "1.0.0", &instance)?;
    stage.wait_running(&instance, 1, started, Duration::from_secs(120))?;

    // The files, written beside the log directory and then renamed into it.
    let host_dir = stage
        .agent
        .data_dir()
        .join("logs")
        .join(&instance)
        .join("writer-0");
    if !host_dir.is_dir() {
        bail!("{} is not the agent's log directory", host_dir.display());
    }
    let staging = stage.agent.dir().join("staging");
    std::fs::create_dir_all(&staging)?;
    let half = total / 2;
    let mut bytes = 0;
    for (name, lines) in [("a", half), ("b", total - half)] {
        bytes += write_file(&staging.join(format!("{name}.log")), name, lines)?;
    }

    // The baseline: cat of the same files, in the same run.
    let cat_started = Instant::now();
    let status = Command::new("cat")
        .arg(staging.join("a.log"))
        .arg(staging.join("b.log"))
        .stdout(std::process::Stdio::null())
        .status()
        .context("cat")?;
    let cat = cat_started.elapsed();
    if !status.success() {
        bail!("cat failed");
    }

    let started = Instant::now();
    for name in ["a.log", "b.log"] {
        std::fs::rename(staging.join(name), host_dir.join(name))?;
    }
    let (mut seen, mut after) = (0, 0);
    while seen < total {
        let (n, next) = drain(&stage, &instance, after)?;
        seen += n;
        after = next;
        if seen < total {
            if started.elapsed() > Duration::from_secs(600) {
                bail!(
                    "{seen} of {total} lines after 600 s\n{}",
                    stage.agent.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let took = started.elapsed();
    let peak = stage.agent.peak_rss().unwrap_or(0);
    let dropped = stage
        .api
        .get_json(&format!("/api/v1/logs?instance={instance}&limit=1"))?["dropped"]
        .as_array()
        .map_or(0, Vec::len);
    stage.undeploy(&instance)?;

    let rate = total as f64 / took.as_secs_f64();
    let cat_rate = total as f64 / cat.as_secs_f64().max(1e-9);
    let mut report = Report::new("logs");
    report
        .setup("lines", format!("{total} in two files, {bytes} bytes"))
        .setup("agent profile", "x86-64-host (log_rate 4 MiB/s)")
        .setup("lines reported dropped", dropped);
    report
        .compare(
            Figure::new(
                "log_dir lines until queryable in the cloud",
                rate,
                "lines/s",
            ),
            Figure::new("cat of the same files to /dev/null", cat_rate, "lines/s"),
            Better::Higher,
        )
        .target(">= 100,000 lines/s", rate >= 100_000.0);
    report.figure(
        Figure::new(
            "time until every line was queryable",
            took.as_secs_f64(),
            "s",
        ),
        Better::Lower,
    );
    report.figure(
        Figure::new(
            "agent peak RSS (VmHWM)",
            peak as f64 / (1024.0 * 1024.0),
            "MiB",
        ),
        Better::Lower,
    );
    Ok(report)
}
