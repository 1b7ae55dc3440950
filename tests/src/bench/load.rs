//! Load from concurrent HTTP clients: each sends its next request as soon as the last one
//! is answered, until a time or a number of acknowledged requests is reached.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::Value;

use crate::http::http_client_with;

/// When a load stops.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// After this long.
    Time(Duration),
    /// Once this many requests were sent (all of them answered).
    Count(u64),
}

/// Requests acknowledged (2xx), and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub acked: u64,
    pub took: Duration,
}

impl Run {
    /// Acknowledged requests per second.
    pub fn rate(&self) -> f64 {
        self.acked as f64 / self.took.as_secs_f64().max(f64::EPSILON)
    }
}

/// `clients` clients POST JSON (with the API token `token`) to `url` + the path `request(n)` gives for the `n`th request
/// (from 0, over all clients). Any answer other than 2xx fails the load.
pub async fn post_json<F>(
    url: &str,
    token: &str,
    clients: usize,
    until: Until,
    request: F,
) -> anyhow::Result<Run>
where
    F: Fn(u64) -> (String, Value) + Send + Sync + 'static,
{
    let http = http_client_with(Some(token))?;
    let request = Arc::new(request);
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let limit = match until {
        Until::Count(n) => n,
        Until::Time(_) => u64::MAX,
    };
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for _ in 0..clients.max(1) {
        let (http, url) = (http.clone(), url.to_owned());
        let (request, stop, next, acked) =
            (request.clone(), stop.clone(), next.clone(), acked.clone());
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= limit {
                    break;
                }
                let (path, body) = request(n);
                let response = http.post(format!("{url}{path}")).json(&body).send().await?;
                if !response.status().is_success() {
                    bail!(
                        "{path} answered {}: {}",
                        response.status(),
                        response.text().await?
                    );
                }
                acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        });
    }
    if let Until::Time(d) = until {
        tokio::time::sleep(d).await;
        stop.store(true, Ordering::Relaxed);
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(Run {
        acked: acked.load(Ordering::Relaxed),
        took: started.elapsed(),
    })
}
