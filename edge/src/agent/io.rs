//! Two small helpers the agent's tasks share: sending one frame up, and sleeping until a
//! deadline that may not be set.

use bytes::Bytes;

use crate::link::Link;

/// Sends `frame` up; a frame the link cannot take now is dropped (what it said is said
/// again after the next connect: the outbox keeps its entries, the sync its state).
pub(super) async fn send(link: &dyn Link, frame: Vec<u8>) {
    if let Err(e) = link.send_up(Bytes::from(frame)).await {
        tracing::debug!(error = %e, "not sent; the next connect says it again");
    }
}

/// Sleeps until `at`, or forever without it.
pub(super) async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
