//! The REST API against hostile clients, on a real `skerry serve`: web pages that post
//! across origins, half-sent heads and bodies, and every layer's refusal in the error shape.

// Tests and their helpers fail loudly: unwrap and expect are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use skerry_tests::http::{HttpResponse, healthz};
use skerry_tests::{Cloud, cli, fixtures};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A cloud started with these environment variables (`SKERRY_HTTP_*`).
fn cloud_with(env: &[(&str, &str)]) -> Cloud {
    let mut cloud = Cloud::start().unwrap();
    if !env.is_empty() {
        for (k, v) in env {
            cloud.set_env(k, v);
        }
        cloud.restart().unwrap();
    }
    cloud
}

fn request(
    cloud: &Cloud,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> HttpResponse {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = cloud.http().unwrap();
        let mut req = client.request(method, format!("{}{path}", cloud.url()));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let answer = req.send().await.unwrap();
        let status = answer.status().as_u16();
        let body = answer.text().await.unwrap();
        HttpResponse { status, body }
    })
}

fn assert_error(answer: &HttpResponse, status: u16, code: &str) -> Value {
    assert_eq!(answer.status, status, "{answer:?}");
    let v = answer
        .json()
        .unwrap_or_else(|e| panic!("not the error shape: {e}"));
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    v
}

fn event_count(cloud: &Cloud) -> usize {
    cloud.api().unwrap().event_count().unwrap()
}

/// A web page can post without a preflight only `text/plain` and the form types, and its
/// browser names its origin: neither reaches a handler, so nothing is recorded.
#[test]
fn a_web_page_cannot_publish_or_deploy() {
    let cloud = cloud_with(&[]);
    let out = cli(&cloud, &["env", "create", "plant"]);
    assert_eq!(out.code, 0, "{out}");
    let before = event_count(&cloud);
    let manifest = fixtures::exec_app("1.0.0").into_bytes();
    let deploy =
        json!({"app": "exec-demo", "version": "1.0.0", "env": "plant", "name": "x"}).to_string();
    let foreign = ("origin", "http://evil.example");
    for (path, body) in [
        ("/api/v1/apps", manifest.clone()),
        ("/api/v1/instances", deploy.clone().into_bytes()),
    ] {
        for content_type in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ] {
            let answer = request(
                &cloud,
                Method::POST,
                path,
                &[foreign, ("content-type", content_type)],
                Some(body.clone()),
            );
            assert_error(&answer, 403, "cross_origin");
            // The same without the Origin: still not JSON.
            let answer = request(
                &cloud,
                Method::POST,
                path,
                &[("content-type", content_type)],
                Some(body.clone()),
            );
            let v = assert_error(&answer, 415, "unsupported_media_type");
            assert_eq!(v["error"]["field"], "content-type", "{v}");
        }
        // A browser's own marks, with a JSON body.
        for headers in [
            [foreign, ("content-type", "application/json")],
            [
                ("sec-fetch-site", "cross-site"),
                ("content-type", "application/json"),
            ],
            [
                ("sec-fetch-site", "same-site"),
                ("content-type", "application/json"),
            ],
        ] {
            let answer = request(&cloud, Method::POST, path, &headers, Some(body.clone()));
            assert_error(&answer, 403, "cross_origin");
        }
    }
    // A page whose own name was pointed at the cloud (DNS rebinding) is same-origin with
    // it: refused as well, by the name it used.
    let rebound_host = format!("evil.example:{}", cloud.listen_addr().port());
    let rebound_origin = format!("http://{rebound_host}");
    for (path, body, content_type) in [
        ("/api/v1/apps", manifest.clone(), "application/yaml"),
        (
            "/api/v1/instances",
            deploy.clone().into_bytes(),
            "application/json",
        ),
    ] {
        let answer = request(
            &cloud,
            Method::POST,
            path,
            &[
                ("host", &rebound_host),
                ("origin", &rebound_origin),
                ("sec-fetch-site", "same-origin"),
                ("content-type", content_type),
            ],
            Some(body),
        );
        let v = assert_error(&answer, 403, "cross_origin");
        assert_eq!(v["error"]["field"], "host", "{v}");
    }
    assert_eq!(
        event_count(&cloud),
        before,
        "a refused request was recorded"
    );
    // The cloud's own origin, and no origin at all (the CLI), are served.
    let own = format!("http://{}", cloud.listen_addr());
    let answer = request(
        &cloud,
        Method::POST,
        "/api/v1/apps",
        &[("origin", &own), ("content-type", "application/yaml")],
        Some(manifest.clone()),
    );
    assert_eq!(answer.status, 201, "{answer:?}");
    let out = cli(&cloud, &["node", "token", "--env", "plant"]);
    assert_eq!(out.code, 0, "{out}");
}

/// An origin in `[http] allowed_origins` may call the API, and gets CORS answers.
#[test]
fn a_configured_origin_is_allowed() {
    let cloud = cloud_with(&[("SKERRY_HTTP_ALLOWED_ORIGINS", "https://console.example")]);
    let console = ("origin", "https://console.example");
    let answer = request(
        &cloud,
        Method::POST,
        "/api/v1/environments",
        &[
            console,
            ("sec-fetch-site", "cross-site"),
            ("content-type", "application/json"),
        ],
        Some(br#"{"name": "plant"}"#.to_vec()),
    );
    assert_eq!(answer.status, 201, "{answer:?}");
    let answer = request(
        &cloud,
        Method::POST,
        "/api/v1/environments",
        &[
            ("origin", "https://other.example"),
            ("content-type", "application/json"),
        ],
        Some(br#"{"name": "other"}"#.to_vec()),
    );
    assert_error(&answer, 403, "cross_origin");
}

/// 2,000 connections that sent half a request head do not keep `/healthz` from answering,
/// and the server closes them after its header timeout; so it does an idle kept-alive one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_heads_are_closed_after_the_header_timeout() {
    const HALF_SENT: usize = 2000;
    raise_open_files(HALF_SENT as u64 + 500);
    let cloud = tokio::task::spawn_blocking(|| cloud_with(&[("SKERRY_HTTP_HEADER_TIMEOUT", "3s")]))
        .await
        .unwrap();
    let addr = cloud.listen_addr();
    let mut held = Vec::with_capacity(HALF_SENT);
    for _ in 0..HALF_SENT {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /api/v1/nodes HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        held.push(s);
    }
    let opened = Instant::now();
    // A kept-alive connection after one whole request.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    let started = Instant::now();
    let up = tokio::task::spawn_blocking(move || healthz(addr))
        .await
        .unwrap();
    let healthz_took = started.elapsed();
    // A node still enrolls meanwhile: the API serves real requests.
    let url = cloud.url();
    let admin = cloud.token().to_owned();
    tokio::task::spawn_blocking(move || {
        let api = skerry_tests::Api::with_token(&url, Some(&admin)).unwrap();
        let token = api.enrollment_token("local", None).unwrap();
        skerry_tests::TestNode::new("under-load")
            .unwrap()
            .enroll(&api, &token)
            .unwrap();
    })
    .await
    .unwrap();
    assert!(
        up,
        "/healthz did not answer while {HALF_SENT} heads were half-sent"
    );
    assert!(healthz_took < Duration::from_secs(2), "{healthz_took:?}");
    // Every one is closed by the server: a read ends (EOF or reset), well before our own
    // deadline of three times the timeout.
    held.push(idle);
    let deadline = Duration::from_secs(9);
    let mut open = 0;
    for mut s in held {
        let left = deadline.saturating_sub(opened.elapsed());
        let mut buf = [0u8; 256];
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(_) | Err(_)) => {}
            Err(_) => open += 1,
        }
    }
    assert_eq!(
        open, 0,
        "{open} connections were still open after {deadline:?}"
    );
    assert!(
        opened.elapsed() >= Duration::from_secs(2),
        "closed before the header timeout: {:?}",
        opened.elapsed()
    );
    drop(cloud);
}

/// Beyond `[http] max_connections`, a new connection waits until one closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_bound_wait_for_one_to_close() {
    let cloud = tokio::task::spawn_blocking(|| {
        cloud_with(&[
            ("SKERRY_HTTP_MAX_CONNECTIONS", "20"),
            ("SKERRY_HTTP_HEADER_TIMEOUT", "2s"),
        ])
    })
    .await
    .unwrap();
    let addr = cloud.listen_addr();
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    // Let the server accept them all.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let mut extra = TcpStream::connect(addr).await.unwrap();
    extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_millis(800), extra.read_to_end(&mut answer)).await;
    assert!(
        read.is_err(),
        "the 21st connection was served at once: {answer:?}"
    );
    tokio::time::timeout(Duration::from_secs(6), extra.read_to_end(&mut answer))
        .await
        .expect("the 21st connection was never served")
        .unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    drop(held);
    drop(cloud);
}

/// A body that stops half-way is answered 408 after the body timeout, in the error shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_body_is_refused_after_the_body_timeout() {
    let cloud = tokio::task::spawn_blocking(|| cloud_with(&[("SKERRY_HTTP_BODY_TIMEOUT", "2s")]))
        .await
        .unwrap();
    let mut s = TcpStream::connect(cloud.listen_addr()).await.unwrap();
    s.write_all(
        b"POST /api/v1/environments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let answer = read_answer(&mut s, Duration::from_secs(8)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_raw_error(&answer, 408, "request_timeout");
    drop(cloud);
}

async fn read_answer(s: &mut TcpStream, within: Duration) -> String {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(within, s.read_to_end(&mut answer))
        .await
        .expect("no answer: the connection is held open");
    String::from_utf8_lossy(&answer).into_owned()
}

fn assert_raw_error(answer: &str, status: u16, code: &str) {
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    assert!(
        head.starts_with(&format!("HTTP/1.1 {status} ")),
        "expected {status}: {head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let v: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {head}\n\n{body:?}"));
    assert_eq!(v["error"]["code"], code, "{v}");
}

async fn raw(addr: SocketAddr, bytes: Vec<u8>) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before it has read everything.
    let _ = s.write_all(&bytes).await;
    read_answer(&mut s, Duration::from_secs(10)).await
}

/// What hyper answers by itself (414, 431, a bad content-length, a malformed request line)
/// is in the error shape too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hypers_own_refusals_are_in_the_error_shape() {
    let cloud = tokio::task::spawn_blocking(|| cloud_with(&[]))
        .await
        .unwrap();
    let addr = cloud.listen_addr();
    let long_uri = format!(
        "GET /api/v1/nodes?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(70_000)
    );
    assert_raw_error(&raw(addr, long_uri.into_bytes()).await, 414, "uri_too_long");
    let big_header = format!(
        "GET /api/v1/nodes HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200_000)
    );
    assert_raw_error(
        &raw(addr, big_header.into_bytes()).await,
        431,
        "headers_too_large",
    );
    let many = format!(
        "GET /api/v1/nodes HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..150)
            .map(|i| format!("X-{i}: 1\r\n"))
            .collect::<String>()
    );
    assert_raw_error(
        &raw(addr, many.into_bytes()).await,
        431,
        "headers_too_large",
    );
    let bad_length = b"POST /api/v1/environments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: abc\r\n\r\n{}".to_vec();
    assert_raw_error(&raw(addr, bad_length).await, 400, "malformed_request");
    let garbage = b"THIS IS NOT HTTP\r\n\r\n".to_vec();
    assert_raw_error(&raw(addr, garbage).await, 400, "malformed_request");
    // The server still serves.
    assert!(healthz(addr));
    drop(cloud);
}

/// A missing field and a key given twice name the field; a body over the limit is 413
/// naming the limit, also for a manifest that reqwest is still sending.
#[test]
fn body_refusals_name_the_field_and_the_limit() {
    let cloud = cloud_with(&[]);
    let api = cloud.api().unwrap();
    let answer = api.post_json("/api/v1/environments", &json!({})).unwrap();
    let v = assert_error(&answer, 400, "invalid_request");
    assert_eq!(v["error"]["field"], "name", "{v}");
    let answer = api
        .post_bytes(
            "/api/v1/environments",
            br#"{"name": "a", "name": "b"}"#.to_vec(),
            "application/json",
        )
        .unwrap();
    let v = assert_error(&answer, 400, "invalid_request");
    assert_eq!(v["error"]["field"], "name", "{v}");
    let answer = api
        .post_json(
            "/api/v1/instances",
            &json!({"app": "a", "version": "1.0.0", "env": "local", "name": "x", "nodes": [{}]}),
        )
        .unwrap();
    let v = assert_error(&answer, 400, "invalid_request");
    assert_eq!(v["error"]["field"], "nodes[0].node", "{v}");

    let limit = skerry_cloud::api::error::MAX_BODY_BYTES;
    let big = format!(
        r#"{{"name": "a", "description": "{}"}}"#,
        "x".repeat(2 * limit)
    );
    let answer = api
        .post_bytes("/api/v1/environments", big.into_bytes(), "application/json")
        .unwrap();
    let v = assert_error(&answer, 413, "payload_too_large");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(&limit.to_string()), "{message}");
    // A 10 MB manifest: the answer reaches the client that is still sending it.
    let manifest = format!(
        "{}\n# {}\n",
        fixtures::weather("1.0.0"),
        "x".repeat(10 << 20)
    );
    let answer = api
        .post_bytes("/api/v1/apps", manifest.into_bytes(), "application/yaml")
        .unwrap();
    let v = assert_error(&answer, 413, "payload_too_large");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("manifest") && message.contains(&limit.to_string()),
        "{message}"
    );
    assert!(healthz(cloud.listen_addr()));
}

/// Every `invalid_query` names the parameter.
#[test]
fn query_refusals_name_the_parameter() {
    let cloud = cloud_with(&[]);
    let api = cloud.api().unwrap();
    for (path, field) in [
        ("/api/v1/events?limit=abc", "limit"),
        ("/api/v1/events?after=-1", "after"),
        ("/api/v1/nodes?bogus=1", "bogus"),
        ("/api/v1/instances/x?purge=maybe", "purge"),
    ] {
        let method = if path.starts_with("/api/v1/instances") {
            Method::DELETE
        } else {
            Method::GET
        };
        let answer = api.request(method, path, None).unwrap();
        let v = assert_error(&answer, 400, "invalid_query");
        assert_eq!(v["error"]["field"], field, "{path}: {v}");
    }
}

/// A path parameter that is not UTF-8 is 400 `invalid_path` naming it, not plain text.
#[test]
fn path_refusals_are_in_the_error_shape() {
    let cloud = cloud_with(&[]);
    let api = cloud.api().unwrap();
    for (path, field) in [
        ("/api/v1/environments/%ff", "env"),
        ("/api/v1/nodes/%c3%28", "node"),
        ("/api/v1/apps/a/versions/%ff", "version"),
    ] {
        let answer = api.get(path).unwrap();
        let v = assert_error(&answer, 400, "invalid_path");
        assert_eq!(v["error"]["field"], field, "{path}: {v}");
    }
}

/// Raises this process's soft open-files limit to at least `want` (within the hard limit).
fn raise_open_files(want: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < want {
        assert!(
            hard >= want,
            "the open-files limit ({hard}) is below the {want} this test needs"
        );
        setrlimit(Resource::RLIMIT_NOFILE, want.max(soft), hard).unwrap();
    }
}
