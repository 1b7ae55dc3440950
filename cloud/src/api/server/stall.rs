//! A bound on a client that stops reading its answer.
//!
//! hyper has no write timeout: a client that sends a request and never reads the answer
//! (or reads it a byte a minute) keeps its connection, and one of the server's connection
//! permits, for as long as it likes. [`WriteStall`] fails a write that has made no progress
//! for [`WRITE_STALL_TIMEOUT`], and hyper then closes the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// How long a write to a client may wait without the client reading anything.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection's IO whose writes fail after [`WRITE_STALL_TIMEOUT`] without progress.
#[derive(Debug)]
pub struct WriteStall<T> {
    inner: T,
    timeout: Duration,
    /// Running while a write is blocked; reset by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteStall<T> {
    pub fn new(inner: T) -> Self {
        Self::with_timeout(inner, WRITE_STALL_TIMEOUT)
    }

    pub fn with_timeout(inner: T, timeout: Duration) -> Self {
        WriteStall {
            inner,
            timeout,
            stalled: None,
        }
    }

    /// After the inner write answered `poll`: resets the timer on progress, starts or
    /// checks it while blocked.
    fn watch<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let timeout = self.timeout;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if timer.as_mut().poll(cx).is_ready() {
            self.stalled = None;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client read nothing of the answer for {}",
                    humantime::format_duration(timeout)
                ),
            )));
        }
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteStall<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteStall<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_write_the_client_never_reads_fails_after_the_timeout() {
        // The timeout is ten times the slow reader's pause below, so that a loaded machine
        // that stretches the pause does not fail the test.
        const TIMEOUT: Duration = Duration::from_millis(1000);
        const PAUSE: Duration = Duration::from_millis(100);
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io = WriteStall::with_timeout(server, TIMEOUT);
        // The pipe takes 1 KiB; then the write blocks until the client reads.
        io.write_all(&[0u8; 1024]).await.unwrap();
        let started = tokio::time::Instant::now();
        let e = io.write_all(&[0u8; 10]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(started.elapsed() >= TIMEOUT, "{:?}", started.elapsed());

        // A client that reads, slowly but within the timeout, is served, however long the
        // whole answer takes (here 16 pauses: longer than the timeout, which progress resets).
        const ANSWER: usize = 256;
        let (mut client2, server) = tokio::io::duplex(16);
        let mut io = WriteStall::with_timeout(server, TIMEOUT);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 16];
            while got.len() < ANSWER {
                tokio::time::sleep(PAUSE).await;
                let n = client2.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            got.len()
        });
        io.write_all(&[1u8; ANSWER]).await.unwrap();
        assert_eq!(reader.await.unwrap(), ANSWER);
        let mut buf = [0u8; 1];
        let _ = client.read(&mut buf).await;
    }
}
