//! `rollout`: an upgrade of an instance on N simulated nodes ([`crate::sim`]) in batches,
//! timed per batch from the rollout's own record, beside a plain deploy of the same
//! instance to the same nodes, in the same run.
//!
//! One `skerry serve` (release) starts, the fleet enrolls and connects (not timed), and:
//! 1. **The baseline**: `POST /api/v1/instances` deploys version 1.0.0 of a one-replica app
//!    to every node, timed until the cloud reports every replica `Running`
//!    ([`crate::sim::fanout::deploy`]).
//! 2. **The upgrade**: `POST /api/v1/instances/{name}/upgrade` to 2.0.0 (another command,
//!    so another spec hash, so every replica is replaced) in `--batch` batches with
//!    `--settle`, timed until `GET .../rollout` is no longer `running`. Each batch's
//!    duration is the rollout's own `duration_ms`; its **overhead** is that less the
//!    settle time: what the controller, the fan-out, the agents and their reports cost on
//!    top of the wait the policy asks for.
//!
//! The simulated runtime reports each replica `Running` with the spec hash of the spec it
//! was told to start, at once (or after `--start-delay-ms`), and the app has no health
//! check, so a node is ready as soon as its new replica's report reaches the cloud.
//!
//! Bounds: the rollout is read every `--poll-ms` (so its end is late by at most that); it
//! and the baseline each give up after `--timeout`. Memory: the report prints the cloud's
//! and this process's RSS and peak RSS after the run (with 1,000 nodes, about 150 MiB here
//! and 55 MiB in the cloud; see docs/benchmarks.md).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use skerry_cloud::api::rollout_dto::RolloutDto;

use super::fanout::cpu_seconds;
use super::report::{Better, Figure, Report};
use crate::cloud::Cloud;
use crate::http::Api;
use crate::procfs;
use crate::sim::{self, Fleet, FleetOptions, fanout};

const ENV: &str = "rollout";
const APP: &str = "idle";
const INSTANCE: &str = "roll-1";
/// The most simulated nodes a run takes (each costs a socket here and in the cloud).
const MAX_NODES: usize = 20_000;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Simulated nodes (at most 20,000).
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// The upgrade's batches, as `skerry upgrade --batch` takes them.
    #[arg(long, default_value = "1,10%,100%")]
    pub batch: String,
    /// How long each node of a batch must stay ready, in seconds (as `--settle`).
    #[arg(long, default_value_t = 1)]
    pub settle_s: u64,
    /// The upgrade's `--timeout` per batch, and how long the baseline and the whole
    /// rollout may take here, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_s: u64,
    /// How often the rollout is read, in milliseconds (10 to 1,000).
    #[arg(long, default_value_t = 100)]
    pub poll_ms: u64,
    /// How long each simulated replica takes to start, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub start_delay_ms: u64,
    /// Worker threads shared by the simulated agents.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

/// Version 2.0.0 of [`fanout::manifest`]'s app: another command, so another spec hash.
fn manifest_v2(app: &str) -> String {
    format!(
        "app: {app}\nversion: 2.0.0\ncomponents:\n  - name: main\n    image: sim/idle:1\n    \
         command: [\"/bin/sleep\", \"2147483647\"]\n    replicas: 1\n"
    )
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn mib(bytes: Option<u64>) -> Option<f64> {
    bytes.map(|b| b as f64 / 1048576.0)
}

/// The upgrade, as timed from here.
struct Upgrade {
    /// Until the 202.
    post: Duration,
    /// Until the first read of the rollout in a state other than `running`.
    ended: Duration,
    /// Until the last new replica started in the simulator.
    started: Option<Duration>,
    rollout: RolloutDto,
    polls: usize,
}

fn upgrade(api: &Api, fleet: &Fleet, args: &Args) -> anyhow::Result<Upgrade> {
    let timeout = Duration::from_secs(args.timeout_s);
    let poll = Duration::from_millis(args.poll_ms.clamp(10, 1000));
    let body = json!({
        "to": "2.0.0",
        "batch": args.batch,
        "settle": format!("{}s", args.settle_s),
        "timeout": format!("{}s", args.timeout_s),
    });
    let path = format!("/api/v1/instances/{INSTANCE}/upgrade");
    let t0 = Instant::now();
    let answer = api.post_json(&path, &body)?;
    let post = t0.elapsed();
    if answer.status != 202 {
        bail!("upgrade answered {}: {}", answer.status, answer.body);
    }
    let mut polls = 0;
    let (ended, rollout) = loop {
        polls += 1;
        let view = api.get_json(&format!("/api/v1/instances/{INSTANCE}/rollout"))?;
        let rollout: RolloutDto =
            serde_json::from_value(view).context("GET .../rollout is not a rollout")?;
        if !matches!(rollout.state.as_str(), "running" | "paused") {
            break (t0.elapsed(), rollout);
        }
        if t0.elapsed() > timeout {
            bail!(
                "the rollout is still {} after {timeout:?}: {} of {} nodes done, batch {} of {}",
                rollout.state,
                rollout.done,
                rollout.nodes,
                rollout.batches.len(),
                rollout.policy.batches.len()
            );
        }
        std::thread::sleep(poll);
    };
    // The baseline started one replica per node; the upgrade starts one more on each.
    let started = fleet
        .wait_started(INSTANCE, 2 * fleet.len(), Duration::from_secs(5))
        .map(|at| at.saturating_duration_since(t0));
    Ok(Upgrade {
        post,
        ended,
        started,
        rollout,
        polls,
    })
}

pub fn run(args: &Args) -> anyhow::Result<Report> {
    if args.nodes == 0 || args.nodes > MAX_NODES {
        bail!("--nodes: {} is not between 1 and {MAX_NODES}", args.nodes);
    }
    let limit = sim::raise_open_files()?;
    let cloud = Cloud::start()?;
    let cloud_pid = cloud.pid().context("the cloud is not running")?;
    let api = cloud.api()?;
    fanout::prepare(&api, ENV, APP, 1)?;
    let published = api.post_bytes(
        "/api/v1/apps",
        manifest_v2(APP).into_bytes(),
        "application/yaml",
    )?;
    if !matches!(published.status, 200 | 201) {
        bail!(
            "publishing 2.0.0 answered {}: {}",
            published.status,
            published.body
        );
    }
    let mut options = FleetOptions::new(args.nodes, ENV);
    options.start_delay = Duration::from_millis(args.start_delay_ms);
    options.threads = args.threads;
    options.connect_timeout = Duration::from_secs(args.timeout_s);
    let fleet = Fleet::start(&cloud, &options)?;
    let setup = fleet.setup().clone();
    let timeout = Duration::from_secs(args.timeout_s);

    let f = fanout::deploy(&api, &fleet, ENV, APP, INSTANCE, 1, timeout)
        .context("the baseline deploy")?;
    let me = std::process::id();
    let cpu_before = cpu_seconds(cloud_pid);
    let u = upgrade(&api, &fleet, args).context("the upgrade")?;
    let cpu_after = cpu_seconds(cloud_pid);
    let (after_running, after_rows) = fanout::running(&api, INSTANCE)?;
    let rss = (procfs::rss(cloud_pid), procfs::peak_rss(cloud_pid));
    let sim_rss = (procfs::rss(me), procfs::peak_rss(me));
    fleet.stop()?;
    drop(cloud);

    let settle = args.settle_s as f64;
    let mut report = Report::new(format!("rollout ({} nodes)", setup.nodes));
    report
        .setup(
            "nodes",
            format!("{} of {} asked", setup.nodes, setup.wanted),
        )
        .setup(
            "cores",
            std::thread::available_parallelism().map_or(0, |c| c.get()),
        )
        .setup("simulator threads", args.threads)
        .setup("replica start delay", format!("{} ms", args.start_delay_ms))
        .setup(
            "upgrade",
            format!(
                "1.0.0 -> 2.0.0, --batch {} --settle {}s --timeout {}s",
                args.batch, args.settle_s, args.timeout_s
            ),
        )
        .setup(
            "open files (soft/hard)",
            format!("{}/{} (was {})", limit.soft, limit.hard, limit.before),
        )
        .setup(
            "enrollment and connect (not timed below)",
            format!(
                "{:.2} s and {:.2} s for {} nodes",
                secs(setup.enroll),
                secs(setup.connect),
                setup.nodes
            ),
        )
        .setup(
            "reads",
            format!(
                "status every {:?} ({} reads), rollout every {} ms ({} reads)",
                f.poll,
                f.polls,
                args.poll_ms.clamp(10, 1000),
                u.polls
            ),
        );
    let baseline = Figure::new(
        format!("deploy to {} until all Running", f.nodes),
        secs(f.running),
        "s",
    );
    report.figure(baseline.clone(), Better::Lower);
    report.figure(
        Figure::new("upgrade API call (202)", secs(u.post), "s"),
        Better::Lower,
    );
    let r = &u.rollout;
    for b in &r.batches {
        let ms = b.duration_ms.unwrap_or(0) as f64 / 1000.0;
        let name = format!(
            "batch {} ({} nodes, {} passed, {} failed)",
            b.batch,
            b.nodes.len(),
            b.passed.len(),
            b.failed.len()
        );
        report.figure(Figure::new(name, ms, "s"), Better::Lower);
        report.compare(
            Figure::new(
                format!("batch {} overhead over settle", b.batch),
                ms - settle,
                "s",
            ),
            baseline.clone(),
            Better::Lower,
        );
    }
    let batches: f64 = r
        .batches
        .iter()
        .map(|b| b.duration_ms.unwrap_or(0) as f64 / 1000.0)
        .sum();
    // The least the rollout could take: one settle per batch, the deploy time once.
    let ideal = Figure::new(
        format!("deploy + {} x settle", r.batches.len()),
        secs(f.running) + settle * r.batches.len() as f64,
        "s",
    );
    report.compare(
        Figure::new("sum of the batches' durations", batches, "s"),
        ideal.clone(),
        Better::Lower,
    );
    report
        .compare(
            Figure::new(
                format!("whole rollout, until {}", r.state),
                secs(u.ended),
                "s",
            ),
            ideal,
            Better::Lower,
        )
        .target("completed", r.state == "completed");
    if let Some(started) = u.started {
        report.figure(
            Figure::new("until the last new replica started", secs(started), "s"),
            Better::Lower,
        );
    }
    if let (Some(a), Some(b)) = (cpu_before, cpu_after) {
        report.figure(
            Figure::new("cloud CPU during the upgrade", b - a, "s"),
            Better::Lower,
        );
    }
    for (who, (now, peak)) in [("cloud", rss), ("simulator", sim_rss)] {
        if let Some(v) = mib(now) {
            report.figure(
                Figure::new(format!("{who} RSS after"), v, "MiB"),
                Better::Lower,
            );
        }
        if let Some(v) = mib(peak) {
            report.figure(
                Figure::new(format!("{who} peak RSS"), v, "MiB"),
                Better::Lower,
            );
        }
    }
    report.note(format!(
        "rollout {}: {} of {} nodes done; afterwards {after_running} of {after_rows} replicas \
         Running{}",
        r.state,
        r.done,
        r.nodes,
        r.reason
            .as_ref()
            .map_or_else(String::new, |why| format!("; reason: {why}"))
    ));
    if let Some(why) = &setup.limited {
        report.note(why.clone());
    }
    report.note(
        "a batch's duration is the rollout's duration_ms (its start to its end, as recorded); \
         the overhead is that less the settle time",
    );
    Ok(report)
}
