//! `footprint`: the agent's resident memory, idle and while it runs a 3-container app,
//! and the stripped size of the binaries, beside the Docker engine's own resident memory
//! (dockerd and its containerd) as a yardstick.
//!
//! The agent is the binary of the profile the benchmark runs in (release: LTO, stripped,
//! `opt-level = "s"`), with the `x86-64-host` firmware profile. RSS is sampled every
//! 100 ms over a window once the agent is connected (idle) and once all three replicas
//! run; the figure is the largest sample, and VmHWM (the peak since start) is given too.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::report::{Better, Figure, Report};
use super::stage::{Stage, idle_command};
use crate::binaries::try_bin;
use crate::images::{busybox_image, unique};
use crate::procfs;
use crate::wait::wait_for;

const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How long each RSS window lasts, in seconds.
    #[arg(long, default_value_t = 10)]
    pub window: u64,
}

/// The largest RSS of `pid` sampled every 100 ms for `window`.
fn sample(pid: u32, window: Duration) -> u64 {
    let started = Instant::now();
    let mut max = 0;
    while started.elapsed() < window {
        max = max.max(procfs::rss(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(100));
    }
    max
}

fn engine_rss() -> Option<u64> {
    let dockerd = procfs::rss(procfs::pid_of("dockerd")?)?;
    let containerd = procfs::pid_of("containerd")
        .and_then(procfs::rss)
        .unwrap_or(0);
    Some(dockerd + containerd)
}

pub fn run(args: &Args) -> anyhow::Result<Report> {
    let window = Duration::from_secs(args.window.max(1));
    let image = busybox_image("1")?;
    let stage = Stage::start("bench-footprint", "x86-64-host")?;
    let pid = stage.agent.pid().context("the agent is not running")?;
    wait_for(Duration::from_secs(30), || {
        stage
            .agent
            .logs()
            .contains("connected to the cloud")
            .then_some(())
    })
    .context("the agent did not connect")?;
    let idle = sample(pid, window);
    let engine_idle = engine_rss().context("no dockerd process found")?;

    let mut manifest = String::from("app: three\nversion: 1.0.0\ncomponents:\n");
    for i in 1..=3 {
        manifest.push_str(&format!(
            "  - name: c{i}\n    image: {image}\n    command: {}\n",
            idle_command()
        ));
    }
    stage.publish(&manifest)?;
    let name = unique("three");
    let started = Instant::now();
    stage.deploy("three", "1.0.0", &name)?;
    stage.wait_running(&name, 3, started, Duration::from_secs(120))?;
    let busy = sample(pid, window);
    let peak = stage.agent.peak_rss().unwrap_or(0);
    let mib = |field: &str| procfs::status_bytes(pid, field).unwrap_or(0) as f64 / MIB;
    let kinds = format!(
        "anonymous (heap, stacks) {:.2} MiB, file-backed (the binary's and libraries' pages) {:.2} MiB; {} threads",
        mib("RssAnon"),
        mib("RssFile"),
        procfs::status_number(pid, "Threads").unwrap_or(0)
    );
    let engine_busy = engine_rss().unwrap_or(engine_idle);
    stage.undeploy(&name)?;

    let edge = std::fs::metadata(try_bin("skerry-edge")?)?.len();
    let cloud = std::fs::metadata(try_bin("skerry")?)?.len();

    let mut report = Report::new("footprint");
    report
        .setup("agent binary", try_bin("skerry-edge")?.display())
        .setup("firmware profile", "x86-64-host")
        .setup(
            "RSS window",
            format!("{} s, sampled every 100 ms", window.as_secs()),
        )
        .setup("agent RSS by kind, with 3 containers", kinds);
    let six = 6.0;
    report
        .compare(
            Figure::new("agent RSS, idle (connected)", idle as f64 / MIB, "MiB"),
            Figure::new("dockerd + containerd RSS", engine_idle as f64 / MIB, "MiB"),
            Better::Lower,
        )
        .target("<= 6 MiB", idle as f64 / MIB <= six);
    report
        .compare(
            Figure::new(
                "agent RSS, running a 3-container app",
                busy as f64 / MIB,
                "MiB",
            ),
            Figure::new("dockerd + containerd RSS", engine_busy as f64 / MIB, "MiB"),
            Better::Lower,
        )
        .target("<= 6 MiB", busy as f64 / MIB <= six);
    report.figure(
        Figure::new(
            "agent peak RSS (VmHWM) over the run",
            peak as f64 / MIB,
            "MiB",
        ),
        Better::Lower,
    );
    report
        .figure(
            Figure::new("skerry-edge stripped binary", edge as f64 / MIB, "MiB"),
            Better::Lower,
        )
        .target("<= 6 MiB", edge as f64 / MIB <= six);
    report.figure(
        Figure::new("skerry (cloud) stripped binary", cloud as f64 / MIB, "MiB"),
        Better::Lower,
    );
    report.note(
        "the agent has no optional cargo features yet: the default build is the build with every feature",
    );
    Ok(report)
}
