//! `catch-up`: a node offline while `--events` events for it were recorded, from its
//! restart until it has committed all of them, and the bytes it received; beside the same
//! catch-up by full replay (no snapshot), and a raw TCP transfer of the replay's bytes.
//!
//! Two agents, `a` and `b`, are enrolled and then stopped (SIGKILL). Each gets `--events`
//! label changes while it is down (64 HTTP clients; 64 label keys, so the node's desired
//! state stays small while its history grows). Then:
//! 1. `a` restarts against the cloud as it runs by default: the cloud sends a snapshot
//!    when that is shorter than the missed events.
//! 2. The cloud restarts with `SKERRY_SYNC_SNAPSHOTS=false`, and `b` restarts: it gets
//!    every missed event, page by page.
//! 3. The bytes `b` received are sent once over a loopback TCP connection and read at the
//!    other end: the time the bytes alone take.
//!
//! Each catch-up is timed two ways: from the agent's own log, between "the MQTT link is up"
//! and the "committed" line that reaches the node's head (the catch-up itself), and from
//! outside, between the restart and the cloud showing the node's lag at 0 (process start,
//! TLS handshake and the ack included). Bytes are the agent's count of what it received on
//! its down topic.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use skerry_shared::clock::Timestamp;

use super::load::{self, Until};
use super::report::{Better, Figure, Report};
use super::stage::log_number;
use crate::agent::Agent;
use crate::cli::cli;
use crate::cloud::Cloud;
use crate::http::Api;
use crate::wait::wait_for;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events recorded for each node while it is offline.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Concurrent HTTP clients recording them.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
}

/// One catch-up, as measured.
#[derive(Debug)]
struct CatchUp {
    /// Link up until the head was committed, from the agent's log.
    link_to_head: Duration,
    /// Restart until the cloud showed lag 0.
    restart_to_lag0: Duration,
    bytes: u64,
    snapshot: bool,
}

/// The node's highest `node_seq` and the agent's lag, as the cloud sees them.
fn lag(api: &Api, node: &str) -> anyhow::Result<(u64, u64)> {
    let v = api.get_json(&format!("/api/v1/nodes/{node}"))?;
    let lag = v["lag"].as_u64().context("a node view without lag")?;
    let acked = v["acked_node_seq"]
        .as_u64()
        .context("a node view without acked_node_seq")?;
    Ok((acked + lag, lag))
}

/// The time at the start of a log line.
fn time(line: &str) -> Option<Timestamp> {
    Timestamp::parse_rfc3339(line.split_whitespace().next()?).ok()
}

/// Reads the catch-up from the agent's log written after a restart: link up until the
/// "committed" line whose `through` is `head`.
fn from_log(log: &str, head: u64) -> anyhow::Result<(Duration, u64, bool)> {
    let up = log
        .lines()
        .find(|l| l.contains("the MQTT link is up"))
        .and_then(time)
        .context("no \"link is up\" line in the agent's log")?;
    let done = log
        .lines()
        .find(|l| l.contains("committed") && log_number(l, "through=") == Some(head))
        .with_context(|| format!("no \"committed through={head}\" line in the agent's log"))?;
    let at = time(done).context("a committed line without a time")?;
    let bytes = log_number(done, "bytes_received=").context("no bytes_received")?;
    let snapshot = log
        .lines()
        .take_while(|l| !std::ptr::eq(*l, done))
        .any(|l| l.contains("committed") && l.contains("snapshot=true"))
        || done.contains("snapshot=true");
    let took = Duration::from_millis(u64::try_from(at.millis() - up.millis()).unwrap_or(0));
    Ok((took, bytes, snapshot))
}

fn catch_up(api: &Api, agent: &mut Agent, head: u64) -> anyhow::Result<CatchUp> {
    let offset = agent.logs().len();
    let started = Instant::now();
    agent.restart()?;
    wait_for(Duration::from_secs(300), || {
        lag(api, agent.name()).ok().filter(|(_, l)| *l == 0)
    })
    .with_context(|| format!("{} did not catch up\n{}", agent.name(), agent.logs()))?;
    let restart_to_lag0 = started.elapsed();
    let logs = agent.logs();
    let (link_to_head, bytes, snapshot) = from_log(&logs[offset..], head)?;
    Ok(CatchUp {
        link_to_head,
        restart_to_lag0,
        bytes,
        snapshot,
    })
}

/// Sends `bytes` bytes over a loopback TCP connection; the time until the reader has them.
fn raw_tcp(bytes: u64) -> anyhow::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut conn, _) = listener.accept()?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = conn.read(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
        }
    });
    let started = Instant::now();
    let mut conn = TcpStream::connect(addr)?;
    let chunk = vec![0x5au8; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        conn.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    drop(conn);
    let got = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the reader panicked"))??;
    let took = started.elapsed();
    if got != bytes {
        bail!("sent {bytes} bytes, {got} arrived");
    }
    Ok(took)
}

/// Records `events` label changes of `node` (values unique, keys cycling over 64).
async fn record(
    url: &str,
    token: &str,
    clients: usize,
    node: String,
    events: u64,
) -> anyhow::Result<()> {
    let path = format!("/api/v1/nodes/{node}/labels");
    let run = load::post_json(url, token, clients, Until::Count(events), move |n| {
        (
            path.clone(),
            json!({ "set": { format!("k{}", n % 64): format!("v{n}") } }),
        )
    })
    .await?;
    if run.acked != events {
        bail!("{} of {events} label changes acknowledged", run.acked);
    }
    Ok(())
}

pub fn run(args: &Args) -> anyhow::Result<Report> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut cloud = Cloud::start()?;
    let out = cli(&cloud, &["env", "create", "bench"]);
    if out.code != 0 {
        bail!("env create failed: {out}");
    }
    let api = cloud.api()?;
    let mut a = Agent::enroll(&cloud, "bench", "catchup-a")?;
    let mut b = Agent::enroll(&cloud, "bench", "catchup-b")?;
    for agent in [&a, &b] {
        wait_for(Duration::from_secs(60), || {
            lag(&api, agent.name()).ok().filter(|(_, l)| *l == 0)
        })
        .with_context(|| format!("{} never connected", agent.name()))?;
    }
    a.kill9()?;
    b.kill9()?;
    let started = Instant::now();
    for agent in [&a, &b] {
        runtime.block_on(record(
            &cloud.url(),
            cloud.token(),
            args.clients,
            agent.name().to_owned(),
            args.events,
        ))?;
    }
    let recording = started.elapsed();
    let (head_a, lag_a) = lag(&api, a.name())?;
    let (head_b, _) = lag(&api, b.name())?;
    if lag_a < args.events {
        bail!(
            "{} is {lag_a} behind, expected at least {}",
            a.name(),
            args.events
        );
    }

    let snap = catch_up(&api, &mut a, head_a)?;
    cloud.set_env("SKERRY_SYNC_SNAPSHOTS", "false");
    cloud.restart()?;
    let api = cloud.api()?;
    let replay = catch_up(&api, &mut b, head_b)?;
    let tcp = raw_tcp(replay.bytes)?;

    let mut report = Report::new("catch-up");
    report
        .setup(
            "missed events per node",
            format!(
                "{} label changes (64 keys), recorded in {:.1} s for both nodes",
                args.events,
                recording.as_secs_f64()
            ),
        )
        .setup(
            "went as",
            format!(
                "default: {}; snapshots off: {}",
                if snap.snapshot {
                    "a snapshot"
                } else {
                    "events"
                },
                if replay.snapshot {
                    "a snapshot"
                } else {
                    "events"
                },
            ),
        )
        .setup(
            "restart until lag 0 (process start, TLS and ack included)",
            format!(
                "default {:.2} s, full replay {:.2} s",
                snap.restart_to_lag0.as_secs_f64(),
                replay.restart_to_lag0.as_secs_f64()
            ),
        );
    report
        .compare(
            Figure::new(
                "link up until the head is committed",
                snap.link_to_head.as_secs_f64(),
                "s",
            ),
            Figure::new(
                "the same by full replay",
                replay.link_to_head.as_secs_f64(),
                "s",
            ),
            Better::Lower,
        )
        .target("<= 1 s", snap.link_to_head <= Duration::from_secs(1));
    report
        .compare(
            Figure::new("bytes received", snap.bytes as f64, "B"),
            Figure::new("the same by full replay", replay.bytes as f64, "B"),
            Better::Lower,
        )
        .target(
            "O(state), not O(events)",
            snap.snapshot && snap.bytes * 10 < replay.bytes,
        );
    report.compare(
        Figure::new(
            "full replay, link up until head",
            replay.link_to_head.as_secs_f64(),
            "s",
        ),
        Figure::new(
            "raw TCP transfer of the replay's bytes",
            tcp.as_secs_f64(),
            "s",
        ),
        Better::Lower,
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_catch_up_is_read_from_the_agent_log() {
        let log = "2026-12-04T05:00:00.100000Z  INFO skerry_edge::link: the MQTT link is up endpoint=x\n\
                   2026-12-04T05:00:00.300000Z  INFO skerry_edge::agent: committed through=40 events=0 snapshot=true bytes_received=900\n\
                   2026-12-04T05:00:00.350000Z  INFO skerry_edge::agent: committed through=41 events=1 snapshot=false bytes_received=1000\n";
        let (took, bytes, snapshot) = from_log(log, 41).unwrap();
        assert_eq!(took, Duration::from_millis(250));
        assert_eq!(bytes, 1000);
        assert!(snapshot);
        assert!(from_log(log, 42).is_err());
    }

    #[test]
    fn raw_tcp_moves_every_byte() {
        raw_tcp(1_000_000).unwrap();
    }
}
