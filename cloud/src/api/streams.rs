//! Long answers of `/api/v1/events` and `/api/v1/logs`: their admission and their pipes.
//!
//! A *stream* is a followed answer (`follow=true`) or a plain read of more than
//! [`LARGE_READ`] events or lines. Each holds a [`Slot`] while it is sent: a client (told
//! apart by its IP address) holds at most [`MAX_STREAMS_PER_CLIENT`], all clients together
//! at most [`MAX_STREAMS`]; beyond, the answer is 429 `too_many_streams` with a
//! `Retry-After` of [`RETRY_AFTER_SECS`]. The slot goes with the answer's body, so it is
//! free again as soon as the stream ends or the client goes away (hyper drops the body of a
//! closed connection).
//!
//! The answer is written page by page: the handler's task reads a page of at most
//! [`PAGE_BYTES`] from the store (on a blocking thread, at most [`CONCURRENT_READS`] at
//! once), turns it into JSON, and sends that chunk down a channel of [`PIPE_CHUNKS`]
//! chunks, so a stream holds a few pages, whatever it reads in all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::LazyLock;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::error::ApiError;

/// The streams one client (one IP address) may hold at once.
pub const MAX_STREAMS_PER_CLIENT: usize = 32;
/// The streams all clients together may hold at once.
pub const MAX_STREAMS: usize = 512;
/// The `Retry-After` (seconds) of a 429 `too_many_streams`.
pub const RETRY_AFTER_SECS: u64 = 5;
/// A plain read of more events or lines than this is a stream (it holds a slot while it is
/// sent); the default page of 1,000 is not.
pub const LARGE_READ: usize = 1000;
/// At most this many bytes of stored events or log lines per page read for an answer (a
/// page holds at least one, however large).
pub const PAGE_BYTES: usize = 64 * 1024;
/// At most this many events or lines per page read for an answer.
pub const PAGE_ITEMS: usize = 256;
/// Chunks (pages turned into JSON) queued between a stream's reader and its connection.
pub const PIPE_CHUNKS: usize = 2;
/// Page reads for answers that run at once, on blocking threads; more wait for a turn.
/// It bounds the threads that many streams would otherwise spread their reads over (and
/// the allocator's per-thread arenas with them).
pub const CONCURRENT_READS: usize = 8;

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

static SLOTS: LazyLock<Mutex<Counts>> = LazyLock::new(|| Mutex::new(Counts::default()));
static READS: Semaphore = Semaphore::const_new(CONCURRENT_READS);

/// A stream's place in the caps; given back on drop.
#[derive(Debug)]
pub struct Slot {
    client: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = SLOTS.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_client.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.by_client.remove(&self.client);
            }
        }
    }
}

/// A refusal with its `Retry-After`.
#[derive(Debug)]
pub struct TooMany(ApiError);

impl IntoResponse for TooMany {
    fn into_response(self) -> Response {
        (
            [(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string())],
            self.0,
        )
            .into_response()
    }
}

/// A slot for a stream of `client`, or 429 `too_many_streams` when it or all clients hold
/// their cap.
pub fn admit(client: IpAddr) -> Result<Slot, TooMany> {
    let mut c = SLOTS.lock();
    let mine = c.by_client.get(&client).copied().unwrap_or(0);
    let refuse = |message: String| {
        Err(TooMany(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            None,
            message,
        )))
    };
    if mine >= MAX_STREAMS_PER_CLIENT {
        return refuse(format!(
            "{client} holds {mine} streams (follows and reads of more than {LARGE_READ}), \
             at most {MAX_STREAMS_PER_CLIENT} per client; close one or retry in \
             {RETRY_AFTER_SECS} s"
        ));
    }
    if c.total >= MAX_STREAMS {
        return refuse(format!(
            "the cloud sends {} streams, at most {MAX_STREAMS} in all; retry in \
             {RETRY_AFTER_SECS} s",
            c.total
        ));
    }
    c.total += 1;
    *c.by_client.entry(client).or_default() += 1;
    Ok(Slot { client })
}

/// The `limit` of a read of `what` (`events`, `lines`): `default` when it names none, and
/// beyond `max` refused 400 `invalid_query` (field `limit`), not clamped.
pub fn limit(
    given: Option<usize>,
    default: usize,
    max: usize,
    what: &str,
) -> Result<usize, ApiError> {
    match given {
        None => Ok(default),
        Some(n) if n > max => Err(ApiError::bad_request(
            "invalid_query",
            "limit",
            format!("limit is {n}: at most {max} {what} per read (page on with after)"),
        )),
        Some(n) => Ok(n),
    }
}

/// The slot of an answer that is a stream (a follow, or a plain read of more than
/// [`LARGE_READ`]), `None` for one that is not, or the 429 answer when `client` or all
/// clients hold their cap.
pub fn admit_for(follow: bool, limit: usize, client: IpAddr) -> Result<Option<Slot>, TooMany> {
    if follow || limit > LARGE_READ {
        admit(client).map(Some)
    } else {
        Ok(None)
    }
}

/// Runs a page read on a blocking thread, once one of [`CONCURRENT_READS`] turns is free.
pub async fn read<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let turn = READS
        .acquire()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    // The turn goes with the read: a caller that stops waiting does not end the read.
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        f()
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
}

/// What a stream's writer sends down its pipe: a chunk, or an error that cuts the answer
/// short (the client sees a broken answer, never a complete-looking one).
pub type Chunk = Result<Bytes, std::io::Error>;

/// A pipe for an answer of `content_type`: the sender to write chunks into, and the
/// answer whose body reads them. The slot, if any, goes with the body.
pub fn pipe(content_type: &'static str, slot: Option<Slot>) -> (mpsc::Sender<Chunk>, Response) {
    let (tx, rx) = mpsc::channel::<Chunk>(PIPE_CHUNKS);
    let body = ReceiverStream::new(rx).map(move |chunk| {
        // Held by the body: dropped with it.
        let _ = &slot;
        chunk
    });
    let answer = (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(body),
    )
        .into_response();
    (tx, answer)
}

/// The error that cuts an answer short after a failed page read.
pub fn cut(e: &ApiError) -> std::io::Error {
    std::io::Error::other(e.message.clone())
}
