//! Event and log streams against a real `skerry serve`: the documented maxima of `limit` are
//! refused beyond, the streams a client (and all clients) may hold at once are capped (429
//! `too_many_streams`) and freed when the clients go away, an unknown instance is 404, and
//! 300 follow streams of a backlog with manifests deliver every event in order while the
//! cloud's memory stays bounded and returns when they close. A large log read sent page by
//! page is in `log_streams.rs`.

// Tests and their helpers fail loudly: unwrap and expect are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use skerry_cloud::api::streams::{MAX_STREAMS, MAX_STREAMS_PER_CLIENT};
use skerry_tests::http::{client_from_with, loopback, open, runtime};
use skerry_tests::procfs::rss;
use skerry_tests::{Cloud, TestNode, fixtures};

const MIB: u64 = 1024 * 1024;

/// A cloud with one enrolled node in `plant` and the weather app published.
fn cloud_with_app() -> Cloud {
    let cloud = Cloud::start().unwrap();
    let api = cloud.api().unwrap();
    api.post_json("/api/v1/environments", &json!({ "name": "plant" }))
        .unwrap()
        .expect_status(201)
        .unwrap();
    let token = api.enrollment_token("plant", None).unwrap();
    TestNode::new("gw-1").unwrap().enroll(&api, &token).unwrap();
    api.post_bytes(
        "/api/v1/apps",
        fixtures::weather("1.0.0").into_bytes(),
        "application/yaml",
    )
    .unwrap()
    .expect_status(201)
    .unwrap();
    cloud
}

fn assert_error(answer: &skerry_tests::http::HttpResponse, status: u16, code: &str, field: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(
        answer.error_code().as_deref(),
        Some(code),
        "{}",
        answer.body
    );
    assert_eq!(
        answer.error_field().as_deref(),
        Some(field),
        "{}",
        answer.body
    );
}

/// `limit` beyond the documented maxima (docs/cli.md: 100,000 events, 10,000 log lines) is
/// refused with the field and the maximum named, not clamped; the maxima themselves pass.
#[test]
fn a_limit_over_the_maximum_is_refused_with_the_field() {
    let cloud = cloud_with_app();
    let api = cloud.api().unwrap();
    api.post_json(
        "/api/v1/instances",
        &json!({ "app": "weather", "version": "1.0.0", "env": "plant", "name": "w1",
                 "nodes": [{ "node": "gw-1" }] }),
    )
    .unwrap()
    .expect_status(201)
    .unwrap();

    for follow in ["", "&follow=true"] {
        let answer = api
            .get(&format!("/api/v1/events?limit=100001{follow}"))
            .unwrap();
        assert_error(&answer, 400, "invalid_query", "limit");
        assert!(answer.body.contains("100000"), "{}", answer.body);
    }
    let all = api.get_json("/api/v1/events?limit=100000").unwrap();
    assert!(!all.as_array().unwrap().is_empty(), "{all}");

    let answer = api.get("/api/v1/logs?instance=w1&limit=10001").unwrap();
    assert_error(&answer, 400, "invalid_query", "limit");
    assert!(answer.body.contains("10000"), "{}", answer.body);
    let page = api
        .get_json("/api/v1/logs?instance=w1&limit=10000")
        .unwrap();
    assert!(page["lines"].is_array(), "{page}");
}

/// `events?instance=nope` is 404 `unknown_instance` like `node=nope` is `unknown_node`; an
/// instance that was undeployed has its history and is still read.
#[test]
fn events_of_an_unknown_instance_are_404_and_of_an_undeployed_one_are_read() {
    let cloud = cloud_with_app();
    let api = cloud.api().unwrap();
    api.post_json(
        "/api/v1/instances",
        &json!({ "app": "weather", "version": "1.0.0", "env": "plant", "name": "w1",
                 "nodes": [{ "node": "gw-1" }] }),
    )
    .unwrap()
    .expect_status(201)
    .unwrap();
    api.delete("/api/v1/instances/w1")
        .unwrap()
        .expect_status(200)
        .unwrap();

    for query in ["instance=nope", "instance=nope&follow=true"] {
        let answer = api.get(&format!("/api/v1/events?{query}")).unwrap();
        assert_error(&answer, 404, "unknown_instance", "instance");
    }
    let answer = api.get("/api/v1/events?node=nope").unwrap();
    assert_error(&answer, 404, "unknown_node", "node");

    let events = api.get_json("/api/v1/events?instance=w1").unwrap();
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 2, "{events}");
}

async fn expect_too_many(client: &reqwest::Client, url: &str, what: &str) {
    let answer = open(client, url).await;
    assert_eq!(answer.status().as_u16(), 429, "{what}");
    let retry: u64 = answer
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "{what}: Retry-After {retry}");
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams", "{what}: {body}");
    println!("{what}: 429 {body}");
}

/// Opens streams until every one of `clients` holds `each`, all of them admitted.
async fn open_all(clients: &[reqwest::Client], url: &str, each: usize) -> Vec<reqwest::Response> {
    let mut held = Vec::new();
    for c in clients {
        for _ in 0..each {
            let answer = open(c, url).await;
            assert_eq!(answer.status().as_u16(), 200, "stream {}", held.len() + 1);
            held.push(answer);
        }
    }
    held
}

/// The streams one client may hold are capped, and so are all clients' together; beyond,
/// 429 `too_many_streams` with a `Retry-After`. A client that goes away frees its slots:
/// the cap is opened, closed, and opened again.
#[test]
fn the_stream_cap_answers_429_and_frees_the_slots_of_closed_streams() {
    let cloud = Cloud::start().unwrap();
    let token = cloud.token().to_owned();
    let follow = format!("{}/api/v1/events?follow=true", cloud.url());
    let large = format!("{}/api/v1/events?limit=100000", cloud.url());
    let small = format!("{}/api/v1/events?limit=10", cloud.url());
    let rt = runtime();
    rt.block_on(async {
        let one = [client_from_with(loopback(0), Some(&token))];
        let held = open_all(&one, &follow, MAX_STREAMS_PER_CLIENT).await;
        expect_too_many(&one[0], &follow, "one client's follow beyond its cap").await;
        expect_too_many(&one[0], &large, "one client's large read beyond its cap").await;
        // A small page is no stream.
        assert_eq!(open(&one[0], &small).await.status().as_u16(), 200);
        // Another client is not held up by the first.
        let other = client_from_with(loopback(1), Some(&token));
        let extra = open(&other, &follow).await;
        assert_eq!(extra.status().as_u16(), 200);
        drop(extra);

        // Closed streams free their slots, soon (the cloud notices the closed connection).
        drop(held);
        let deadline = Instant::now() + Duration::from_secs(10);
        let held = loop {
            let mut held = Vec::new();
            for _ in 0..MAX_STREAMS_PER_CLIENT {
                let answer = open(&one[0], &follow).await;
                if answer.status().as_u16() != 200 {
                    break;
                }
                held.push(answer);
            }
            if held.len() == MAX_STREAMS_PER_CLIENT {
                break held;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {MAX_STREAMS_PER_CLIENT} slots were free 10 s after the streams closed",
                held.len()
            );
            drop(held);
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        expect_too_many(&one[0], &follow, "the cap again, once refilled").await;
        drop(held);

        // The cap of all clients together.
        let clients: Vec<reqwest::Client> = (10..)
            .take(MAX_STREAMS.div_ceil(MAX_STREAMS_PER_CLIENT))
            .map(|n| client_from_with(loopback(n), Some(&token)))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut held = Vec::new();
        'fill: for c in &clients {
            for _ in 0..MAX_STREAMS_PER_CLIENT {
                if held.len() == MAX_STREAMS {
                    break 'fill;
                }
                loop {
                    let answer = open(c, &follow).await;
                    if answer.status().as_u16() == 200 {
                        held.push(answer);
                        break;
                    }
                    // The first client's streams may take a moment to be noticed closed.
                    assert!(Instant::now() < deadline, "stream {}", held.len() + 1);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        let fresh = client_from_with(loopback(5), Some(&token));
        expect_too_many(&fresh, &follow, "a new client beyond the cap of all").await;
        drop(held);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if open(&fresh, &follow).await.status().as_u16() == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no slot free 10 s after all closed"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

/// A manifest of about 4 KB: an app version whose `env` carries 40 long entries.
fn big_manifest(version: usize) -> String {
    let mut env = String::new();
    for i in 0..40 {
        env.push_str(&format!(
            "        VAR_{i:02}: \"{}\"\n",
            format!("{version:06}-{i:02}-").repeat(8)
        ));
    }
    format!(
        "app: bulk\nversion: 1.0.{version}\ncomponents:\n  - name: main\n    image: bulk:1\n    env:\n{env}"
    )
}

/// The sequence number at the start of an NDJSON event line (`{"seq":N,...`).
fn seq_of(line: &[u8]) -> u64 {
    let text = std::str::from_utf8(line).unwrap();
    let rest = text
        .strip_prefix("{\"seq\":")
        .unwrap_or_else(|| panic!("not an event line: {}", &text[..text.len().min(200)]));
    rest[..rest.find(',').unwrap()].parse().unwrap()
}

/// Reads a follow stream until the event `tip`, checking that it delivers 1..=tip in order.
async fn follow_to(response: reqwest::Response, tip: u64, check_json: bool) {
    let mut response = response;
    let mut buf: Vec<u8> = Vec::new();
    let mut next = 1;
    while next <= tip {
        let chunk = response.chunk().await.unwrap().expect("the stream ended");
        buf.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|b| *b == b'\n') {
            let line = &buf[start..start + pos];
            start += pos + 1;
            if line.is_empty() {
                continue;
            }
            assert_eq!(seq_of(line), next, "events out of order");
            if check_json {
                let e: Value = serde_json::from_slice(line).unwrap();
                assert!(e["payload"].is_object(), "{e}");
            }
            next += 1;
        }
        buf.drain(..start);
    }
}

/// Samples the process's RSS every 20 ms until `stop`, keeping the highest.
fn sample_peak(pid: u32, stop: Arc<AtomicBool>) -> (Arc<AtomicU64>, std::thread::JoinHandle<()>) {
    let peak = Arc::new(AtomicU64::new(0));
    let p = peak.clone();
    let handle = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            p.fetch_max(rss(pid).unwrap_or(0), Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    (peak, handle)
}

/// 300 follow streams from the start of a log of 2,000 manifests (about 4 KB each) deliver
/// every event in order, and the cloud's memory is bounded by pages while they run and
/// returns once they close; then 32 plain reads of `limit=100000` the same. The figures are
/// printed; the bounds are generous, for a regression to cross (before pages were bounded,
/// 300 such streams took the cloud from 124 MB to 1.77 GB, and kept it).
#[test]
fn follows_of_a_big_backlog_deliver_every_event_in_order_with_bounded_memory() {
    const EVENTS: usize = 2000;
    const STREAMS: usize = 300;
    let cloud = Cloud::start().unwrap();
    let token = cloud.token().to_owned();
    let pid = cloud.pid().unwrap();
    let url = cloud.url();
    let rt = runtime();
    let started = Instant::now();
    rt.block_on(async {
        let http = cloud.http().unwrap();
        let mut versions = (0..EVENTS).collect::<Vec<_>>().into_iter();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let chunk: Vec<usize> = versions.by_ref().take(EVENTS / 16 + 1).collect();
            let (http, url) = (http.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                for v in chunk {
                    let answer = http
                        .post(format!("{url}/api/v1/apps"))
                        .header("content-type", "application/yaml")
                        .body(big_manifest(v))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(
                        answer.status().as_u16(),
                        201,
                        "{}",
                        answer.text().await.unwrap()
                    );
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let api = cloud.api().unwrap();
    let events = api.get_json("/api/v1/events?limit=100000").unwrap();
    let tip = events.as_array().unwrap().last().unwrap()["seq"]
        .as_u64()
        .unwrap();
    let log_json = events.to_string().len() as u64;
    drop(events);
    assert!(tip as usize >= EVENTS);
    println!(
        "log: {tip} events, {:.1} MiB as JSON, written in {:.1} s",
        log_json as f64 / MIB as f64,
        started.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(1));
    let idle = rss(pid).unwrap();

    // 300 follows from 0, spread over clients within the per-client cap.
    let stop = Arc::new(AtomicBool::new(false));
    let (peak, sampler) = sample_peak(pid, stop.clone());
    let started = Instant::now();
    let clients: Vec<reqwest::Client> = (0..STREAMS.div_ceil(MAX_STREAMS_PER_CLIENT))
        .map(|n| client_from_with(loopback(n as u32), Some(&token)))
        .collect();
    let follow = format!("{url}/api/v1/events?follow=true&after=0");
    rt.block_on(async {
        let mut held = Vec::new();
        for i in 0..STREAMS {
            let answer = open(&clients[i / MAX_STREAMS_PER_CLIENT], &follow).await;
            assert_eq!(answer.status().as_u16(), 200, "stream {i}");
            held.push(answer);
        }
        let tasks: Vec<_> = held
            .into_iter()
            .enumerate()
            .map(|(i, r)| tokio::spawn(follow_to(r, tip, i == 0)))
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let during = peak.load(Ordering::Relaxed);
    let follow_secs = started.elapsed().as_secs_f64();
    // The streams are closed now; give the cloud a moment to notice and free them.
    std::thread::sleep(Duration::from_secs(3));
    let after_follows = rss(pid).unwrap();

    // Plain reads of the whole log, 32 at once.
    peak.store(0, Ordering::Relaxed);
    let all = format!("{url}/api/v1/events?limit=100000");
    rt.block_on(async {
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let (c, all) = (clients[i % clients.len()].clone(), all.clone());
                tokio::spawn(async move {
                    let answer = open(&c, &all).await;
                    assert_eq!(answer.status().as_u16(), 200);
                    let page: Vec<Value> = answer.json().await.unwrap();
                    let seqs: Vec<u64> = page.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
                    assert_eq!(seqs, (1..=tip).collect::<Vec<_>>());
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let during_reads = peak.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let after_reads = rss(pid).unwrap();

    let mib = |b: u64| b as f64 / MIB as f64;
    println!(
        "cloud RSS: idle {:.1} MiB; {STREAMS} follows from 0 ({follow_secs:.1} s): peak {:.1} MiB, \
         after {:.1} MiB; 32 reads of limit=100000: peak {:.1} MiB, after {:.1} MiB",
        mib(idle),
        mib(during),
        mib(after_follows),
        mib(during_reads),
        mib(after_reads)
    );
    assert!(
        during < idle + 600 * MIB,
        "peak RSS {:.1} MiB during the follows, idle {:.1} MiB",
        mib(during),
        mib(idle)
    );
    assert!(
        after_follows < idle + 100 * MIB,
        "RSS {:.1} MiB after the follows closed, idle {:.1} MiB",
        mib(after_follows),
        mib(idle)
    );
    assert!(
        during_reads < idle + 600 * MIB,
        "peak RSS {:.1} MiB during the reads, idle {:.1} MiB",
        mib(during_reads),
        mib(idle)
    );
    assert!(
        after_reads < idle + 100 * MIB,
        "RSS {:.1} MiB after the reads, idle {:.1} MiB",
        mib(after_reads),
        mib(idle)
    );
}

/// A follow whose filter matches none of the events that keep coming still gets its empty
/// keep-alive line every 15 s, as a follow of a quiet log does: the keep-alive counts from
/// the last line sent, not from the last event looked at. (Before, each event that did
/// not match started the 15 s again, so a filtered follow of a busy log got no keep-alive
/// at all, and a proxy in front of the cloud could close it as idle.)
#[test]
fn a_filtered_follow_of_a_busy_log_still_gets_its_keepalive() {
    let cloud = Cloud::start().unwrap();
    let token = cloud.token().to_owned();
    let url = cloud.url();
    let rt = runtime();
    rt.block_on(async {
        let client = client_from_with(loopback(0), Some(&token));
        // No event is dated 2100 or later: none matches.
        let follow = format!("{url}/api/v1/events?follow=true&since=2100-01-01T00:00:00Z");
        let mut answer = open(&client, &follow).await;
        assert_eq!(answer.status().as_u16(), 200);
        let started = Instant::now();
        // An event a second, none of which the follow shows.
        let busy = {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let created = client
                        .post(format!("{url}/api/v1/environments"))
                        .json(&json!({ "name": format!("busy-{i}") }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(created.status().as_u16(), 201);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        };
        let got = tokio::time::timeout(Duration::from_secs(30), answer.chunk()).await;
        busy.abort();
        let chunk = got
            .expect("no keep-alive line in 30 s while events that do not match kept coming")
            .unwrap()
            .expect("the stream ended");
        assert_eq!(&chunk[..], b"\n", "{:?}", String::from_utf8_lossy(&chunk));
        assert!(
            started.elapsed() >= Duration::from_secs(10),
            "the keep-alive came after {:?}",
            started.elapsed()
        );
    });
}
