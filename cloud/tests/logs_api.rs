//! `GET /api/v1/logs` against the real router, engine and report store, in process: lines
//! stored through `ReportStore::ingest` (as the sync hub stores them), read in pages and
//! followed as NDJSON, and the refusals of a bad query.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use skerry_cloud::api::dto::{ErrorBody, LogLineDto, LogsDto};
use skerry_cloud::reports::{LogRetention, ReportStore};
use skerry_cloud::sync::Hub;
use skerry_shared::clock::Timestamp;
use skerry_shared::ids::{Name, NodeId};
use skerry_shared::outbox::{
    LogBatch, LogChunk, LogSource, LogSpan, LogStream, LogsDropped, OutboxBody, OutboxEntry,
};

mod common;

const DEADLINE: Duration = Duration::from_secs(20);

struct Server {
    _dir: tempfile::TempDir,
    base: String,
    reports: ReportStore,
    node: NodeId,
    stop: tokio::sync::watch::Sender<bool>,
    http: reqwest::Client,
}

/// The API on a free port, with the node `gw-1` enrolled.
async fn server() -> Server {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let engine = common::engine(dir.path()).await;
    let node = common::enroll(&engine, "gw-1", common::x86()).await;
    let http = common::admin_client(&engine).await;
    let pki = skerry_cloud::pki::Pki::load_or_create(&dir.path().join("keys")).unwrap();
    let reports =
        ReportStore::open(&dir.path().join("reports.redb"), LogRetention::default()).unwrap();
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let state = skerry_cloud::api::AppState {
        engine: engine.clone(),
        pki: Arc::new(pki),
        mqtt: vec![],
        nats: vec![],
        stopping,
        hub: Hub::new(engine),
        reports: reports.clone(),
        secrets: Arc::new(skerry_cloud::secrets::SecretsKey::generate()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = skerry_cloud::api::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let mut stopped = stop.subscribe();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
            .unwrap();
    });
    Server {
        _dir: dir,
        base: format!("http://{addr}"),
        reports,
        node,
        stop,
        http,
    }
}

impl Server {
    async fn get(&self, path_and_query: &str) -> (u16, String) {
        let answer = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        (status, answer.text().await.unwrap())
    }

    /// The status, code and field of a refusal.
    async fn refused(&self, path_and_query: &str) -> (u16, String, Option<String>) {
        let (status, body) = self.get(path_and_query).await;
        let e: ErrorBody = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path_and_query}: {e} in {body}"));
        (status, e.error.code, e.error.field)
    }

    async fn page(&self, path_and_query: &str) -> LogsDto {
        let (status, body) = self.get(path_and_query).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Stores `n` lines of `file` from `first`, as the hub stores an outbox frame.
    async fn lines(&self, seq: u64, component: &str, file: &str, first: u64, n: usize) {
        let chunk = LogChunk {
            source: source(component, file),
            first_line: first,
            time: Timestamp(1_700_000_000_000),
            lines: (0..n)
                .map(|i| format!("{component} {file} {}", first + i as u64))
                .collect(),
            pieces: Default::default(),
        };
        let entry = OutboxEntry {
            seq,
            body: OutboxBody::Logs(LogBatch::pack(&[chunk]).unwrap()),
        };
        let got = self
            .reports
            .ingest(self.node, 1, vec![entry])
            .await
            .unwrap();
        assert_eq!(got.acked, vec![seq]);
    }
}

fn source(component: &str, file: &str) -> LogSource {
    LogSource {
        instance: Name::parse("web").unwrap(),
        component: Name::parse(component).unwrap(),
        replica: 0,
        stream: LogStream::File(file.into()),
    }
}

#[tokio::test]
async fn a_bad_query_is_refused_by_field() {
    let s = server().await;
    s.lines(1, "app", "app.log", 1, 1).await;
    for (query, status, code, field) in [
        ("", 400, "missing_field", "instance"),
        ("?component=app", 400, "missing_field", "instance"),
        ("?instance=Web_1", 400, "invalid_name", "instance"),
        (
            "?instance=web&component=A",
            400,
            "invalid_name",
            "component",
        ),
        ("?instance=web&since=soon", 400, "invalid_time", "since"),
        ("?instance=web&node=nope", 404, "unknown_node", "node"),
        ("?instance=nope", 404, "unknown_instance", "instance"),
    ] {
        let got = s.refused(&format!("/api/v1/logs{query}")).await;
        assert_eq!(
            got,
            (status, code.to_owned(), Some(field.to_owned())),
            "{query}"
        );
    }
    let (status, code, _) = s.refused("/api/v1/logs?instance=web&limit=x").await;
    assert_eq!((status, code.as_str()), (400, "invalid_query"));
    let (status, code, _) = s.refused("/api/v1/logs?instance=web&bogus=1").await;
    assert_eq!((status, code.as_str()), (400, "invalid_query"));
}

#[tokio::test]
async fn lines_are_read_in_pages_with_their_drops() {
    let s = server().await;
    s.lines(1, "app", "app.log", 1, 3).await;
    s.lines(2, "db", "db.log", 1, 2).await;
    s.reports
        .ingest(
            s.node,
            1,
            vec![OutboxEntry {
                seq: 3,
                body: OutboxBody::LogsDropped(LogsDropped {
                    spans: vec![LogSpan {
                        source: source("app", "app.log"),
                        first_line: 4,
                        lines: 120,
                    }],
                    bytes: 900,
                    batches: 2,
                }),
            }],
        )
        .await
        .unwrap();
    let all = s.page("/api/v1/logs?instance=web").await;
    assert_eq!(all.lines.len(), 5);
    let first = &all.lines[0];
    assert_eq!(
        (
            first.cursor,
            first.node.as_str(),
            first.node_name.as_str(),
            first.component.as_str(),
            first.replica,
            first.file.as_str(),
            first.line,
            first.text.as_str(),
        ),
        (
            1,
            s.node.to_string().as_str(),
            "gw-1",
            "app",
            0,
            "app.log",
            1,
            "app app.log 1"
        )
    );
    assert_eq!(first.time, "2023-11-14T22:13:20.000Z");
    assert_eq!(all.next, 5);
    assert_eq!(all.dropped.len(), 1);
    let d = &all.dropped[0];
    assert_eq!((d.node_name.as_str(), d.lines, d.batches), ("gw-1", 120, 2));
    assert_eq!(
        (
            d.files[0].file.as_str(),
            d.files[0].first_line,
            d.files[0].lines
        ),
        ("app.log", 4, 120)
    );

    // The node by name or id, the component, pages with `after` and `limit`.
    let by_id = s
        .page(&format!("/api/v1/logs?instance=web&node={}", s.node))
        .await;
    assert_eq!(by_id.lines.len(), 5);
    let db = s
        .page("/api/v1/logs?instance=web&component=db&node=gw-1")
        .await;
    assert_eq!(
        db.lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
        vec!["db db.log 1", "db db.log 2"]
    );
    assert!(db.dropped.is_empty(), "the drops were of another component");
    let page = s.page("/api/v1/logs?instance=web&after=2&limit=2").await;
    assert_eq!(
        page.lines.iter().map(|l| l.cursor).collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert_eq!(page.next, 4);
    let since = s
        .page("/api/v1/logs?instance=web&since=2030-01-01T00:00:00Z")
        .await;
    assert!(since.lines.is_empty());
}

/// Reads NDJSON values from a streamed answer, skipping keep-alive lines.
struct Stream {
    response: reqwest::Response,
    buf: Vec<u8>,
}

impl Stream {
    async fn next(&mut self) -> LogLineDto {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return serde_json::from_slice(&line).unwrap();
            }
            let chunk = tokio::time::timeout(DEADLINE, self.response.chunk())
                .await
                .expect("no line in time")
                .unwrap()
                .expect("the stream ended");
            self.buf.extend_from_slice(&chunk);
        }
    }
}

#[tokio::test]
async fn follow_streams_the_backlog_then_new_lines_until_the_server_stops() {
    let s = server().await;
    s.lines(1, "app", "app.log", 1, 2).await;
    s.lines(2, "db", "db.log", 1, 1).await;
    let response = s
        .http
        .get(format!(
            "{}/api/v1/logs?instance=web&component=app&follow=true",
            s.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let mut stream = Stream {
        response,
        buf: Vec::new(),
    };
    assert_eq!(stream.next().await.text, "app app.log 1");
    assert_eq!(stream.next().await.text, "app app.log 2");
    // New lines arrive as they are stored; other components' are left out.
    s.lines(3, "db", "db.log", 2, 1).await;
    s.lines(4, "app", "app.log", 3, 2).await;
    let next = stream.next().await;
    assert_eq!((next.cursor, next.text.as_str()), (5, "app app.log 3"));
    assert_eq!(stream.next().await.text, "app app.log 4");
    // The stream ends when the server stops.
    s.stop.send(true).unwrap();
    let ended = tokio::time::timeout(DEADLINE, async {
        loop {
            match stream.response.chunk().await {
                Ok(Some(c)) if c.iter().all(u8::is_ascii_whitespace) => {}
                Ok(Some(c)) => panic!("unexpected data: {c:?}"),
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream did not end");
}
