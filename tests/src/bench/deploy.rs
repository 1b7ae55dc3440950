//! `deploy`: from the API call until a 5-service app runs on a real engine, beside
//! `docker-compose up -d` of the same five services on the same engine.
//!
//! Both run the same FROM-scratch busybox image, already built, with the same command.
//! Skerry's figure ends when the cloud reports all five replicas `Running` (the agent
//! observed them and its report reached the cloud); compose's ends when `up -d` returns.
//! Rounds alternate between the two, and each figure is the median of its rounds.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::report::{Better, Figure, Report};
use super::stage::{Stage, idle_command, median};
use crate::images::{busybox_image, unique};

const SERVICES: usize = 5;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rounds of each.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
}

fn manifest(image: &str) -> String {
    let mut out = String::from("app: five\nversion: 1.0.0\ncomponents:\n");
    for i in 1..=SERVICES {
        out.push_str(&format!(
            "  - name: svc{i}\n    image: {image}\n    command: {}\n",
            idle_command()
        ));
    }
    out
}

fn compose_file(image: &str) -> String {
    let mut out = String::from("services:\n");
    for i in 1..=SERVICES {
        out.push_str(&format!(
            "  svc{i}:\n    image: {image}\n    command: {}\n",
            idle_command()
        ));
    }
    out
}

fn compose(file: &std::path::Path, project: &str, args: &[&str]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = Command::new("docker-compose")
        .arg("-f")
        .arg(file)
        .args(["-p", project])
        .args(args)
        .output()
        .context("docker-compose (Debian's docker-compose package) is needed as the baseline")?;
    let took = started.elapsed();
    if !out.status.success() {
        bail!(
            "docker-compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
}

pub fn run(args: &Args) -> anyhow::Result<Report> {
    let image = busybox_image("1")?;
    let stage = Stage::start("bench-deploy", "x86-64-host")?;
    stage.publish(&manifest(&image))?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, compose_file(&image))?;

    let (mut skerry, mut baseline) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds.max(1) {
        let name = unique("five");
        let started = Instant::now();
        stage.deploy("five", "1.0.0", &name)?;
        let took = stage.wait_running(&name, SERVICES, started, Duration::from_secs(120))?;
        skerry.push(took);
        stage.undeploy(&name)?;

        let project = unique("five");
        baseline.push(compose(&file, &project, &["up", "-d"])?);
        compose(&file, &project, &["down", "-t", "1"])?;
    }
    let (s, b) = (median(skerry.clone()), median(baseline.clone()));
    let mut report = Report::new("deploy");
    report
        .setup(
            "app",
            format!("{SERVICES} services, FROM-scratch busybox, no pull"),
        )
        .setup("rounds", args.rounds.max(1))
        .setup(
            "skerry rounds (s)",
            format!(
                "{:?}",
                skerry.iter().map(Duration::as_secs_f64).collect::<Vec<_>>()
            ),
        )
        .setup(
            "compose rounds (s)",
            format!(
                "{:?}",
                baseline
                    .iter()
                    .map(Duration::as_secs_f64)
                    .collect::<Vec<_>>()
            ),
        );
    let ratio = s.as_secs_f64() / b.as_secs_f64().max(f64::EPSILON);
    report
        .compare(
            Figure::new(
                "API call until 5 running in the cloud's status",
                s.as_secs_f64(),
                "s",
            ),
            Figure::new("docker-compose up -d", b.as_secs_f64(), "s"),
            Better::Lower,
        )
        .target("<= 1.2x compose", ratio <= 1.2);
    Ok(report)
}
