//! A property test over the REST API of a real `skerry serve`: generated request bodies,
//! query strings and path segments, on every route and method. Whatever arrives, the cloud
//! answers without a 5xx, every 4xx is in the
//! error shape `{"error": {"code", "message"}}`, it still answers `/healthz`, and its peak
//! memory stays bounded.
//!
//! `PROPTEST_CASES` sets the number of requests (default 400).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use skerry_tests::cloud::Cloud;
use skerry_tests::procfs;

/// The cloud's peak RSS may not pass this, whatever it was sent.
const PEAK_RSS_BOUND: u64 = 512 * 1024 * 1024;

/// Routes as templates: `{}` is replaced by a generated path segment.
const ROUTES: &[&str] = &[
    "/api/v1/environments",
    "/api/v1/environments/{}",
    "/api/v1/enrollment-tokens",
    "/api/v1/enroll",
    "/api/v1/nodes",
    "/api/v1/nodes/{}",
    "/api/v1/nodes/{}/labels",
    "/api/v1/nodes/{}/environments",
    "/api/v1/nodes/{}/environments/{}",
    "/api/v1/nodes/{}/logs",
    "/api/v1/apps",
    "/api/v1/apps/{}",
    "/api/v1/apps/{}/versions/{}",
    "/api/v1/instances",
    "/api/v1/instances/{}",
    "/api/v1/instances/{}/upgrade",
    "/api/v1/instances/{}/rollback",
    "/api/v1/instances/{}/rollout",
    "/api/v1/instances/{}/stop",
    "/api/v1/instances/{}/start",
    "/api/v1/instances/{}/restart",
    "/api/v1/environments/{}/rename",
    "/api/v1/tokens",
    "/api/v1/tokens/{}",
    "/api/v1/secrets",
    "/api/v1/secrets/{}",
    "/api/v1/events",
    "/api/v1/events/verify",
    "/api/v1/logs",
    "/api/v1/{}",
    "/{}",
];

/// Query keys the API knows, and some it does not. `follow` is left out: a followed
/// stream does not end, and this test reads whole answers.
const KEYS: &[&str] = &[
    "env",
    "node",
    "instance",
    "since",
    "after",
    "limit",
    "component",
    "app",
    "x",
    "",
];

/// Field names the request bodies use, so that generated objects reach the handlers'
/// validation and not only the JSON parser.
const FIELDS: &[&str] = &[
    "name",
    "labels",
    "entries",
    "env",
    "app",
    "version",
    "nodes",
    "node",
    "weight",
    "selector",
    "set",
    "dry_run",
    "token",
    "profile",
    "csr",
    "ttl",
    "description",
    "to",
    "batch",
    "settle",
    "timeout",
    "max_unavailable",
    "max_failed",
    "action",
    "components",
    "role",
    "envs",
    "address",
];

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{0,70}",
        "(%[0-9a-fA-F]{2}){1,6}",
        "%[g-z]{0,2}",
        "\\PC{0,20}",
        Just("local".to_owned()),
        Just("..".to_owned()),
        Just("1.0.0".to_owned()),
        "[a-z]{300,2000}",
        // Long, yet under the URI limit of the HTTP client and the cloud (65,534 bytes),
        // so it reaches the handlers; a longer URI (414) is sent raw in api_hostile.rs.
        Just("u".repeat(60_000)),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,40}".prop_map(Value::String),
        "[a-z0-9-]{1,20}".prop_map(Value::String),
        "[a-z]{5000,20000}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..8).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// A request body and its content type.
fn body() -> impl Strategy<Value = Option<(Vec<u8>, String)>> {
    prop_oneof![
        Just(None),
        value().prop_map(|v| Some((v.to_string().into_bytes(), "application/json".to_owned()))),
        prop::collection::vec(any::<u8>(), 0..512)
            .prop_map(|b| Some((b, "application/json".to_owned()))),
        "\\PC{0,200}".prop_map(|s| Some((s.into_bytes(), "application/yaml".to_owned()))),
        value().prop_map(|v| Some((v.to_string().into_bytes(), "text/plain".to_owned()))),
        // Past the body limit: 413.
        Just(Some((vec![b' '; 3 << 20], "application/json".to_owned()))),
        // Duplicate keys.
        Just(Some((
            br#"{"name":"a","name":"b"}"#.to_vec(),
            "application/json".to_owned()
        ))),
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(KEYS), segment()), 0..4).prop_map(|kv| {
        if kv.is_empty() {
            return String::new();
        }
        let pairs: Vec<String> = kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("?{}", pairs.join("&"))
    })
}

#[derive(Clone)]
struct Case {
    method: reqwest::Method,
    path: String,
    body: Option<(Vec<u8>, String)>,
}

/// Cases print with long paths and bodies cut, so that a failure stays readable.
impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = self.body.as_ref().map(|(b, ct)| {
            format!(
                "{ct}, {} bytes: {:?}",
                b.len(),
                cut(&String::from_utf8_lossy(b))
            )
        });
        write!(f, "{} {} body {body:?}", self.method, cut(&self.path))
    }
}

/// At most 200 characters of `s`.
fn cut(s: &str) -> String {
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}... ({} bytes)", &s[..i], s.len()),
        None => s.to_owned(),
    }
}

fn case() -> impl Strategy<Value = Case> {
    let method = prop::sample::select(vec![
        reqwest::Method::GET,
        reqwest::Method::POST,
        reqwest::Method::PATCH,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ]);
    (
        method,
        prop::sample::select(ROUTES),
        segment(),
        segment(),
        query(),
        body(),
    )
        .prop_map(|(method, route, a, b, q, body)| {
            let path = route.replacen("{}", &a, 1).replacen("{}", &b, 1);
            Case {
                method,
                path: format!("{path}{q}"),
                body,
            }
        })
}

/// Checks one answer: no 5xx, and every error in the shape.
fn check(case: &Case, status: u16, body: &str) -> Result<(), String> {
    if status >= 500 {
        return Err(format!("{case:?} answered {status}: {}", cut(body)));
    }
    if status >= 400 {
        let v: Value = serde_json::from_str(body).map_err(|e| {
            format!(
                "{case:?} answered {status} with a body that is not JSON ({e}): {:?}",
                cut(body)
            )
        })?;
        let shaped = v["error"]["code"].is_string() && v["error"]["message"].is_string();
        if !shaped {
            return Err(format!(
                "{case:?} answered {status} outside the error shape: {}",
                cut(body)
            ));
        }
    }
    Ok(())
}

#[test]
fn no_request_gets_a_5xx_or_an_error_outside_the_shape() {
    let cloud = Cloud::start().expect("the cloud starts");
    let base = cloud.url();
    // A new connection per request: the cloud closes a connection whose request body it
    // did not read, and a pooled client could race that close with its next request.
    skerry_tests::http::init_crypto();
    // As the admin: the handlers behind the auth layer are what is fuzzed here (the auth
    // layer itself has its own property test, `api_access`).
    let http = reqwest::Client::builder()
        .default_headers(skerry_tests::http::bearer(cloud.token()))
        .pool_max_idle_per_host(0)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let pid = cloud.pid().expect("the cloud runs");
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(400);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&case(), |case| {
        let mut req = http.request(case.method.clone(), format!("{base}{}", case.path));
        if let Some((bytes, content_type)) = &case.body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
                .body(bytes.clone());
        }
        let answer = rt.block_on(async {
            let answer = req.send().await?;
            let status = answer.status().as_u16();
            Ok::<_, reqwest::Error>((status, answer.text().await?))
        });
        let (status, body) = match answer {
            Ok(answer) => answer,
            // A request the HTTP client cannot form (a URI over 65,534 bytes, when two long
            // segments meet) never reaches the cloud.
            Err(e) if e.is_builder() => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(format!("{case:?}: {e:?}"))),
        };
        check(&case, status, &body).map_err(TestCaseError::fail)?;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\n--- the cloud's log ---\n{}", cloud.logs());
    }
    assert!(
        skerry_tests::http::healthz(cloud.listen_addr()),
        "the cloud no longer answers /healthz"
    );
    let peak = procfs::peak_rss(pid).expect("the cloud's peak RSS");
    println!(
        "{cases} requests; the cloud's peak RSS {:.1} MiB, now {:.1} MiB",
        peak as f64 / 1048576.0,
        procfs::rss(pid).unwrap_or(0) as f64 / 1048576.0
    );
    assert!(
        peak < PEAK_RSS_BOUND,
        "the cloud's peak RSS reached {peak} bytes, past the bound of {PEAK_RSS_BOUND}"
    );
}
