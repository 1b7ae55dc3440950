//! `fanout`: one deploy to N simulated nodes ([`crate::sim`]), timed until every node has
//! acknowledged it and until the cloud reports every replica `Running`, beside a raw MQTT
//! round trip to N connected clients with no Skerry logic ([`super::rawmqtt`]), in the
//! same run.
//!
//! For each N: the baseline runs first (and ends), then a new `skerry serve` starts, the
//! fleet enrolls and connects (timed apart), and one `POST /api/v1/instances` places a
//! one-replica app on every node of the environment ([`crate::sim::fanout`]). The CPU time
//! the cloud and this process spent during the deploy is reported beside it: on 2 cores,
//! it says which side limits.

use std::time::Duration;

use anyhow::Context;

use super::rawmqtt;
use super::report::{Better, Figure, Report};
use crate::cloud::Cloud;
use crate::procfs;
use crate::sim::{self, Fleet, FleetOptions, fanout};

/// The target: 10,000 nodes converged within this.
const TARGET: Duration = Duration::from_secs(5);
const ENV: &str = "fanout";
const APP: &str = "idle";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Fleet sizes, one report each.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub nodes: Vec<usize>,
    /// How long each simulated replica takes to start, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub start_delay_ms: u64,
    /// Worker threads shared by the simulated agents (and by the baseline's clients).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

/// CPU seconds (user and system, all threads) a process has used: `/proc/PID/stat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; in
    // USER_HZ ticks (100 a second on Linux).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

pub fn run(args: &Args) -> anyhow::Result<Vec<Report>> {
    args.nodes.iter().map(|&n| one(args, n)).collect()
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn one(args: &Args, n: usize) -> anyhow::Result<Report> {
    let limit = sim::raise_open_files()?;
    let baseline = rawmqtt::round_trip(n, args.threads).context("the raw MQTT baseline")?;

    let cloud = Cloud::start()?;
    let cloud_pid = cloud.pid().context("the cloud is not running")?;
    let api = cloud.api()?;
    fanout::prepare(&api, ENV, APP, 1)?;
    let mut options = FleetOptions::new(n, ENV);
    options.start_delay = Duration::from_millis(args.start_delay_ms);
    options.threads = args.threads;
    options.connect_timeout = Duration::from_secs(600);
    let fleet = Fleet::start(&cloud, &options)?;
    let setup = fleet.setup().clone();

    let me = std::process::id();
    let cpu_before = (cpu_seconds(cloud_pid), cpu_seconds(me));
    let f = fanout::deploy(&api, &fleet, ENV, APP, "fan-1", 1, Duration::from_secs(600))?;
    let cpu_after = (cpu_seconds(cloud_pid), cpu_seconds(me));
    let cloud_rss = procfs::rss(cloud_pid);
    let sim_rss = procfs::rss(me);
    fleet.stop()?;
    drop(cloud);

    let mut report = Report::new(format!("fanout ({} nodes)", setup.nodes));
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
            "open files (soft/hard)",
            format!(
                "{}/{} here (was {}), cloud {}",
                limit.soft,
                limit.hard,
                limit.before,
                setup
                    .cloud_open_files
                    .map_or_else(|| "unknown".to_owned(), |s| s.to_string())
            ),
        )
        .setup(
            "enrollment (not timed below)",
            format!("{:.2} s for {} nodes", secs(setup.enroll), setup.nodes),
        )
        .setup(
            "status reads",
            format!("every {:?}, {} reads", f.poll, f.polls),
        );
    let rt = Figure::new(
        format!("raw MQTT round trip to {}", baseline.clients),
        secs(baseline.round_trip),
        "s",
    );
    report.compare(
        Figure::new(
            "connect all (TLS, CONNECT, SUBSCRIBE, hello)",
            secs(setup.connect),
            "s",
        ),
        Figure::new(
            "raw connect (TLS, CONNECT, SUBSCRIBE)",
            secs(baseline.connect),
            "s",
        ),
        Better::Lower,
    );
    report.figure(
        Figure::new("deploy API call (201)", secs(f.post), "s"),
        Better::Lower,
    );
    report.compare(
        Figure::new(
            "until all acknowledged (journal commit)",
            secs(f.acknowledged),
            "s",
        ),
        rt.clone(),
        Better::Lower,
    );
    report.compare(
        Figure::new("until all replicas started", secs(f.started), "s"),
        rt.clone(),
        Better::Lower,
    );
    let converged = report.compare(
        Figure::new(
            "until all Running in the cloud's status",
            secs(f.running),
            "s",
        ),
        rt,
        Better::Lower,
    );
    // The target is set for 10,000 nodes.
    if setup.nodes >= 10_000 {
        converged.target("<= 5 s", f.running <= TARGET);
    }
    if let (Some(a), Some(b)) = (cpu_before.0, cpu_after.0) {
        report.figure(
            Figure::new("cloud CPU during the deploy", b - a, "s"),
            Better::Lower,
        );
    }
    if let (Some(a), Some(b)) = (cpu_before.1, cpu_after.1) {
        report.figure(
            Figure::new("simulator CPU during the deploy", b - a, "s"),
            Better::Lower,
        );
    }
    if let Some(rss) = cloud_rss {
        report.figure(
            Figure::new("cloud RSS after", rss as f64 / 1048576.0, "MiB"),
            Better::Lower,
        );
    }
    if let Some(rss) = sim_rss {
        report.figure(
            Figure::new("simulator RSS after", rss as f64 / 1048576.0, "MiB"),
            Better::Lower,
        );
    }
    if let Some(why) = &setup.limited {
        report.note(why.clone());
    }
    report.note(format!(
        "Running is read from GET /api/v1/instances/fan-1 every {:?}: up to that late",
        f.poll
    ));
    Ok(report)
}
