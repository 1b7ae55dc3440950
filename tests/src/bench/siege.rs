//! `siege`: one cloud under hostile load while it deploys, beside the same deploy and the
//! same cloud at rest, in the same run.
//!
//! The cloud's log is first filled with a backlog (environments with labels, and app
//! versions whose manifests make events of a few kilobytes), and `--nodes` simulated
//! agents ([`crate::sim`]) connect. Then:
//! 1. **calm**: one deploy to every node, timed until every replica is `Running` in the
//!    cloud's status ([`crate::sim::fanout`]); the cloud's RSS after it is the *idle* RSS;
//! 2. **siege** (at least `--hold-secs`): `--slow` clients open connections and send a request head one header line
//!    every `--drip-ms`, never finishing it (a slowloris); `--streams` clients follow the
//!    event log from sequence 0 (`GET /api/v1/events?follow=true&after=0`) and read what
//!    comes; a probe asks `/healthz` every 100 ms; and a second deploy to every node runs,
//!    timed the same way. The clients come from `--sources` loopback addresses
//!    (127.0.0.2 and on), as a crowd of clients would, not as one.
//!
//! The report puts the deploy under siege beside the calm one, the cloud's peak RSS during
//! the siege beside its idle RSS, and its RSS once the siege has ended; it says how many
//! streams were admitted or refused (429), how many of them received the whole backlog,
//! how many slow connections the cloud closed, and how `/healthz` answered.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::load::{self, Until};
use super::report::{Better, Figure, Report};
use crate::cloud::Cloud;
use crate::procfs;
use crate::sim::{self, Fleet, FleetOptions, fanout};

const ENV: &str = "siege";
const APP: &str = "idle";
/// The app whose versions fill the backlog with larger events.
const BIG_APP: &str = "backlog";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Simulated nodes the deploys go to.
    #[arg(long, default_value_t = 100)]
    pub nodes: usize,
    /// Slow clients, each holding one connection with a request head never finished.
    #[arg(long, default_value_t = 1000)]
    pub slow: usize,
    /// Clients following the event log from sequence 0.
    #[arg(long, default_value_t = 300)]
    pub streams: usize,
    /// Environments created before the siege, one event each.
    #[arg(long, default_value_t = 2000)]
    pub events: u64,
    /// App versions published before the siege, one event of a few KB each.
    #[arg(long, default_value_t = 200)]
    pub versions: u64,
    /// How often a slow client sends its next header line, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub drip_ms: u64,
    /// Loopback source addresses the clients are spread over (127.0.0.2 and on).
    #[arg(long, default_value_t = 50)]
    pub sources: u8,
    /// The least time the siege lasts, in seconds: longer than the cloud's header timeout
    /// (10 s), so that slow clients meet it.
    #[arg(long, default_value_t = 25)]
    pub hold_secs: u64,
}

/// The `n`th of `sources` loopback source addresses.
fn source(n: usize, sources: u8) -> IpAddr {
    let i = (n % usize::from(sources.max(1))) as u8;
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i))
}

/// An app version of 8 components, so that its event weighs a few kilobytes.
fn big_manifest(version: u64) -> String {
    let mut m = format!("app: {BIG_APP}\nversion: 1.0.{version}\ncomponents:\n");
    for c in 0..8 {
        m.push_str(&format!(
            "  - name: part-{c}\n    image: sim/idle:1\n    command: [\"/bin/sleep\", \"infinity\"]\n    \
             env: {{ A: \"{a}\", B: \"{b}\", C: \"{c}\" }}\n",
            a = "a".repeat(120),
            b = "b".repeat(120),
        ));
    }
    m
}

/// What the siege's clients saw.
#[derive(Debug, Default)]
struct Tally {
    slow_opened: AtomicU64,
    /// Slow connections the cloud closed (end of stream or a failed write).
    slow_closed: AtomicU64,
    slow_open_now: AtomicU64,
    streams_admitted: AtomicU64,
    streams_refused: AtomicU64,
    streams_failed: AtomicU64,
    /// Streams that received every event of the backlog.
    streams_caught_up: AtomicU64,
    stream_bytes: AtomicU64,
    health_ok: AtomicU64,
    health_failed: AtomicU64,
    /// The slowest `/healthz` answer, in microseconds.
    health_worst_us: AtomicU64,
    /// The cloud's highest RSS seen, in bytes.
    peak_rss: AtomicU64,
}

/// One slow client: a connection that sends a request head a line at a time and never ends
/// it; when the cloud closes it, it opens the next.
async fn slow_client(
    addr: SocketAddr,
    from: IpAddr,
    drip: Duration,
    stop: Arc<AtomicBool>,
    t: Arc<Tally>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
            return;
        };
        if socket.bind(SocketAddr::new(from, 0)).is_err() {
            return;
        }
        let Ok(mut conn) = socket.connect(addr).await else {
            tokio::time::sleep(drip).await;
            continue;
        };
        t.slow_opened.fetch_add(1, Ordering::Relaxed);
        t.slow_open_now.fetch_add(1, Ordering::Relaxed);
        let mut closed = conn
            .write_all(b"GET /api/v1/environments HTTP/1.1\r\nHost: skerry\r\n")
            .await
            .is_err();
        let mut buf = [0u8; 1024];
        let mut line = 0u64;
        while !closed && !stop.load(Ordering::Relaxed) {
            tokio::select! {
                _ = conn.read(&mut buf) => {
                    // Whatever comes (an answer, the end of the stream, an error), the cloud
                    // is done with this connection: its head was never complete.
                    closed = true;
                }
                () = tokio::time::sleep(drip) => {
                    line += 1;
                    let header = format!("x-drip-{line}: {line}\r\n");
                    closed = conn.write_all(header.as_bytes()).await.is_err();
                }
            }
        }
        t.slow_open_now.fetch_sub(1, Ordering::Relaxed);
        if closed {
            t.slow_closed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One client following the log from 0 until the siege ends.
async fn stream_client(
    url: String,
    token: String,
    from: IpAddr,
    backlog: u64,
    stop: Arc<AtomicBool>,
    t: Arc<Tally>,
) {
    let Ok(http) = reqwest::Client::builder()
        .local_address(from)
        .default_headers(crate::http::bearer(&token))
        .build()
    else {
        t.streams_failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let answer = http
        .get(format!("{url}/api/v1/events?follow=true&after=0"))
        .send()
        .await;
    let answer = match answer {
        Ok(a) if a.status().as_u16() == 429 => {
            t.streams_refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Ok(a) if a.status().is_success() => a,
        _ => {
            t.streams_failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    t.streams_admitted.fetch_add(1, Ordering::Relaxed);
    let mut body = answer.bytes_stream();
    let mut lines = 0u64;
    let mut caught_up = false;
    while !stop.load(Ordering::Relaxed) {
        let chunk = tokio::select! {
            c = body.next() => c,
            () = tokio::time::sleep(Duration::from_millis(200)) => continue,
        };
        let Some(Ok(chunk)) = chunk else { break };
        t.stream_bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        if !caught_up && lines >= backlog {
            caught_up = true;
            t.streams_caught_up.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Asks `/healthz` every 100 ms on a new connection, until the siege ends.
async fn health_probe(url: String, stop: Arc<AtomicBool>, t: Arc<Tally>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(http) = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(0)
            .build()
        else {
            return;
        };
        let t0 = Instant::now();
        let ok = matches!(
            http.get(format!("{url}/healthz")).send().await,
            Ok(a) if a.status().is_success()
        );
        let us = t0.elapsed().as_micros() as u64;
        if ok {
            t.health_ok.fetch_add(1, Ordering::Relaxed);
            t.health_worst_us.fetch_max(us, Ordering::Relaxed);
        } else {
            t.health_failed.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads the cloud's RSS every 50 ms, keeping the highest.
async fn rss_sampler(pid: u32, stop: Arc<AtomicBool>, t: Arc<Tally>) {
    while !stop.load(Ordering::Relaxed) {
        if let Some(rss) = procfs::rss(pid) {
            t.peak_rss.fetch_max(rss, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

pub fn run(args: &Args) -> anyhow::Result<Report> {
    crate::http::init_crypto();
    let limit = sim::raise_open_files()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("a tokio runtime for the siege")?;

    let cloud = Cloud::start()?;
    let pid = cloud.pid().context("the cloud is not running")?;
    let api = cloud.api()?;
    let url = cloud.url();
    fanout::prepare(&api, ENV, APP, 1)?;

    // The backlog.
    let filled = Instant::now();
    rt.block_on(load::post_json(
        &url,
        cloud.token(),
        16,
        Until::Count(args.events),
        |n| {
            let name = format!("backlog-{n}");
            let body = json!({ "name": name, "labels": { "site": format!("s{}", n % 97) } });
            ("/api/v1/environments".to_owned(), body)
        },
    ))
    .context("filling the backlog with environments")?;
    for v in 0..args.versions {
        let answer = api.post_bytes(
            "/api/v1/apps",
            big_manifest(v).into_bytes(),
            "application/yaml",
        )?;
        if !matches!(answer.status, 200 | 201) {
            bail!("publish answered {}: {}", answer.status, answer.body);
        }
    }
    let backlog = api.event_count()? as u64;
    let filled = filled.elapsed();

    let mut options = FleetOptions::new(args.nodes, ENV);
    options.threads = 2;
    let fleet = Fleet::start(&cloud, &options)?;
    let nodes = fleet.len();
    let calm = fanout::deploy(&api, &fleet, ENV, APP, "calm", 1, Duration::from_secs(300))
        .context("the deploy at rest")?;
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = procfs::rss(pid).context("the cloud's RSS")?;

    // The siege.
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let addr = cloud.listen_addr();
    let mut tasks = Vec::new();
    tasks.push(rt.spawn(rss_sampler(pid, stop.clone(), tally.clone())));
    tasks.push(rt.spawn(health_probe(url.clone(), stop.clone(), tally.clone())));
    for i in 0..args.slow {
        let from = source(i, args.sources);
        let drip = Duration::from_millis(args.drip_ms);
        tasks.push(rt.spawn(slow_client(addr, from, drip, stop.clone(), tally.clone())));
    }
    for j in 0..args.streams {
        let from = source(j, args.sources);
        tasks.push(rt.spawn(stream_client(
            url.clone(),
            cloud.token().to_owned(),
            from,
            backlog,
            stop.clone(),
            tally.clone(),
        )));
    }
    // Let the crowd arrive before the deploy starts.
    let arrived = crate::wait::wait_for(Duration::from_secs(30), || {
        let answered = tally.streams_admitted.load(Ordering::Relaxed)
            + tally.streams_refused.load(Ordering::Relaxed)
            + tally.streams_failed.load(Ordering::Relaxed);
        (answered >= args.streams as u64
            && tally.slow_opened.load(Ordering::Relaxed) >= args.slow as u64)
            .then_some(())
    });
    let siege_started = Instant::now();
    let sieged = fanout::deploy(
        &api,
        &fleet,
        ENV,
        APP,
        "sieged",
        1,
        Duration::from_secs(300),
    );
    // Hold the siege until the streams had the time to read the backlog, and at least
    // `hold_secs`.
    let _ = crate::wait::wait_for(Duration::from_secs(60), || {
        (tally.streams_caught_up.load(Ordering::Relaxed)
            >= tally.streams_admitted.load(Ordering::Relaxed))
        .then_some(())
    });
    let hold = Duration::from_secs(args.hold_secs);
    if let Some(left) = hold.checked_sub(siege_started.elapsed()) {
        std::thread::sleep(left);
    }
    let siege_took = siege_started.elapsed();
    let slow_open_at_end = tally.slow_open_now.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    let after_rss = procfs::rss(pid);
    std::thread::sleep(Duration::from_secs(7));
    let later_rss = procfs::rss(pid);
    let health_after = crate::http::healthz(addr);
    fleet.stop()?;
    drop(cloud);
    let sieged = sieged.context("the deploy under siege")?;

    let t = &tally;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut report = Report::new(format!(
        "siege ({} slow clients, {} event streams, deploy to {} nodes)",
        args.slow, args.streams, nodes
    ));
    report
        .setup("nodes", format!("{nodes} simulated agents of {} asked", args.nodes))
        .setup(
            "cores",
            std::thread::available_parallelism().map_or(0, |c| c.get()),
        )
        .setup(
            "backlog",
            format!(
                "{backlog} events ({} environments, {} app versions of 8 components), filled in {:.1} s",
                args.events,
                args.versions,
                filled.as_secs_f64()
            ),
        )
        .setup(
            "client sources",
            format!("{} loopback addresses", args.sources),
        )
        .setup(
            "slow clients",
            format!("{} , one header line every {} ms", args.slow, args.drip_ms),
        )
        .setup(
            "open files (soft/hard)",
            format!("{}/{} (was {})", limit.soft, limit.hard, limit.before),
        )
        .setup(
            "crowd arrived before the deploy",
            if arrived.is_some() { "yes" } else { "not all within 30 s" },
        );
    report.compare(
        Figure::new(
            "deploy under siege, until all Running",
            sieged.running.as_secs_f64(),
            "s",
        ),
        Figure::new("same deploy at rest", calm.running.as_secs_f64(), "s"),
        Better::Lower,
    );
    report.compare(
        Figure::new(
            "cloud peak RSS during the siege",
            mib(get(&t.peak_rss)),
            "MiB",
        ),
        Figure::new("cloud RSS at rest", mib(idle_rss), "MiB"),
        Better::Lower,
    );
    if let Some(after) = after_rss {
        report.compare(
            Figure::new("cloud RSS 3 s after the siege", mib(after), "MiB"),
            Figure::new("cloud RSS at rest", mib(idle_rss), "MiB"),
            Better::Lower,
        );
    }
    if let Some(later) = later_rss {
        report.compare(
            Figure::new("cloud RSS 10 s after the siege", mib(later), "MiB"),
            Figure::new("cloud RSS at rest", mib(idle_rss), "MiB"),
            Better::Lower,
        );
    }
    report.figure(
        Figure::new(
            "slowest /healthz during the siege",
            get(&t.health_worst_us) as f64 / 1000.0,
            "ms",
        ),
        Better::Lower,
    );
    report.figure(
        Figure::new(
            "/healthz failures during the siege",
            get(&t.health_failed) as f64,
            "",
        ),
        Better::Lower,
    );
    report.note(format!(
        "/healthz answered {} times, failed {} times, and answered after the siege: {}",
        get(&t.health_ok),
        get(&t.health_failed),
        if health_after { "yes" } else { "no" }
    ));
    report.note(format!(
        "event streams: {} admitted, {} refused with 429, {} failed; {} of the admitted read \
         the whole backlog of {backlog} events; {:.1} MiB sent to them in all",
        get(&t.streams_admitted),
        get(&t.streams_refused),
        get(&t.streams_failed),
        get(&t.streams_caught_up),
        mib(get(&t.stream_bytes))
    ));
    report.note(format!(
        "slow connections: {} opened, {} closed by the cloud, {} still open when the siege \
         ended after {:.1} s",
        get(&t.slow_opened),
        get(&t.slow_closed),
        slow_open_at_end,
        siege_took.as_secs_f64()
    ));
    Ok(report)
}
