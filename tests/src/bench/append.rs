//! `append`: durable commands per second on the embedded log with 64 concurrent clients,
//! beside raw redb commits of the same bytes.
//!
//! Two figures, each a run of `--secs` seconds with `--clients` clients that each send
//! their next command as soon as the last one is answered (every answer means durable: a
//! redb commit with fsync, shared by the commands that queued meanwhile):
//! - **HTTP**: a real `skerry serve`, each command a `POST /api/v1/environments` (JSON in,
//!   JSON out) from a client in this process. Clients and server share the machine.
//! - **engine**: the cloud's engine and redb log in this process, each command submitted
//!   to the engine directly: the log's own rate, without HTTP.
//!
//! The baseline is raw redb: the events the engine run wrote, read back and encoded as the
//! log stores them (postcard), inserted into a fresh database with a `u64 -> bytes` table,
//! `--clients` events per commit (the largest batch that many clients can form), each commit
//! durable. No hash chain, no node index, no handlers, no projections.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use redb::{Database, TableDefinition};
use serde_json::json;
use skerry_cloud::command::Command;
use skerry_cloud::engine::Engine;
use skerry_cloud::log::{EventLog, RedbLog};
use skerry_shared::event::Actor;

use super::load::{self, Run, Until};
use super::report::{Better, Figure, Report};
use crate::cloud::Cloud;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Seconds each run lasts.
    #[arg(long, default_value_t = 5)]
    pub secs: u64,
}

async fn engine_run(engine: &Engine, args: &Args) -> anyhow::Result<Run> {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for me in 0..args.clients {
        let (engine, stop, acked) = (engine.clone(), stop.clone(), acked.clone());
        tasks.spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let command = Command::CreateEnvironment {
                    name: format!("a{me}-{i}"),
                    labels: BTreeMap::new(),
                    entries: Vec::new(),
                };
                engine.submit(Actor::Cloud, command).await?;
                acked.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    tokio::time::sleep(Duration::from_secs(args.secs)).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(Run {
        acked: acked.load(Ordering::Relaxed),
        took: started.elapsed(),
    })
}

const RAW: TableDefinition<u64, &[u8]> = TableDefinition::new("events");

/// Every event of `log`, encoded as the log stores it.
fn stored_bytes(log: &dyn EventLog) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = log.read(after, 4096)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            out.push(postcard::to_stdvec(e)?);
        }
    }
    Ok(out)
}

/// Inserts `events` into a fresh redb database at `path`, `batch` per durable commit.
fn raw_run(path: &Path, events: &[Vec<u8>], batch: usize) -> anyhow::Result<Run> {
    let db = Database::create(path)?;
    let started = Instant::now();
    for (i, chunk) in events.chunks(batch.max(1)).enumerate() {
        let tx = db.begin_write()?;
        {
            let mut table = tx.open_table(RAW)?;
            for (j, bytes) in chunk.iter().enumerate() {
                table.insert((i * batch + j) as u64, bytes.as_slice())?;
            }
        }
        tx.commit()?;
    }
    Ok(Run {
        acked: events.len() as u64,
        took: started.elapsed(),
    })
}

pub fn run(args: &Args) -> anyhow::Result<Report> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let cloud = Cloud::start()?;
    let http = runtime.block_on(load::post_json(
        &cloud.url(),
        cloud.token(),
        args.clients,
        Until::Time(Duration::from_secs(args.secs)),
        |n| {
            (
                "/api/v1/environments".to_owned(),
                json!({ "name": format!("a{n}") }),
            )
        },
    ))?;
    drop(cloud);

    // The engine's data goes where the cloud's did (a temporary directory on the same disk).
    let dir = tempfile::Builder::new()
        .prefix("skerry-append-")
        .tempdir()?;
    let log = Arc::new(RedbLog::open(&dir.path().join("events.redb"), 64 << 20)?);
    let engine = Engine::start(log.clone())?;
    let in_process = runtime.block_on(engine_run(&engine, args))?;
    engine.close();
    let events = stored_bytes(log.as_ref())?;
    if events.len() as u64 != in_process.acked {
        bail!(
            "the log holds {} events, the engine acknowledged {}",
            events.len(),
            in_process.acked
        );
    }
    let raw = raw_run(&dir.path().join("raw.redb"), &events, args.clients)
        .context("the raw redb baseline")?;
    let mean_bytes = events.iter().map(Vec::len).sum::<usize>() / events.len().max(1);

    let mut report = Report::new("append");
    report
        .setup("clients", args.clients)
        .setup("run", format!("{} s each", args.secs))
        .setup("command", "create an environment (one event)")
        .setup("event as stored", format!("{mean_bytes} bytes on average"))
        .setup(
            "acknowledged",
            format!(
                "HTTP {} in {:.2} s, engine {} in {:.2} s",
                http.acked,
                http.took.as_secs_f64(),
                in_process.acked,
                in_process.took.as_secs_f64()
            ),
        )
        .setup(
            "baseline",
            format!(
                "raw redb, {} events, {} per durable commit",
                events.len(),
                args.clients
            ),
        );
    let baseline = || Figure::new("raw redb commits, batched", raw.rate(), "/s");
    report
        .compare(
            Figure::new("durable commands/s over HTTP", http.rate(), "/s"),
            baseline(),
            Better::Higher,
        )
        .target(
            ">= 20,000/s and >= 50% of raw",
            http.rate() >= 20_000.0 && http.rate() >= raw.rate() / 2.0,
        );
    report
        .compare(
            Figure::new(
                "durable commands/s, engine in process",
                in_process.rate(),
                "/s",
            ),
            baseline(),
            Better::Higher,
        )
        .target(
            ">= 20,000/s and >= 50% of raw",
            in_process.rate() >= 20_000.0 && in_process.rate() >= raw.rate() / 2.0,
        );
    Ok(report)
}
