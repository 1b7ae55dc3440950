//! hyper's own error answers, in the API's error shape.
//!
//! When hyper cannot read a request head (a malformed request line, a bad `content-length`,
//! a URI or a head over its limits), it answers by itself, before any service runs, with a
//! bodiless head: `HTTP/1.1 400 Bad Request`, `content-length: 0`, `date: ...`, and closes
//! the connection. hyper has no hook for that answer, so [`ErrorRewrite`] wraps the
//! connection's IO and, when a response head that hyper wrote alone goes out, sends the same
//! status with a JSON error body in its place.
//!
//! It recognises hyper's head by its exact form: status 400, 414 or 431, and no header but
//! `content-length: 0`, `date` and `connection`. The API's own answers always name a
//! `content-type`, so none of them has that form.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::limits::{MAX_HEAD_BYTES, MAX_HEADERS, MAX_URI_BYTES};
use crate::api::dto::{ErrorBody, ErrorDetail};

/// The largest head hyper writes for its own errors (a status line and two short headers).
const MAX_OWN_HEAD: usize = 256;

/// The JSON answer for a status that hyper wrote by itself.
fn error_for(status: u16) -> Option<(&'static str, &'static str, String)> {
    let (reason, code, message) = match status {
        400 => (
            "Bad Request",
            "malformed_request",
            "the request is not valid HTTP/1.1: a malformed request line or header (such as content-length)".to_owned(),
        ),
        414 => (
            "URI Too Long",
            "uri_too_long",
            format!(
                "the request's URI is too long; at most {} bytes are accepted",
                MAX_URI_BYTES
            ),
        ),
        431 => (
            "Request Header Fields Too Large",
            "headers_too_large",
            format!(
                "the request head is too large; at most {} bytes and {} headers are accepted",
                MAX_HEAD_BYTES,
                MAX_HEADERS
            ),
        ),
        _ => return None,
    };
    Some((reason, code, message))
}

/// If `buf` is a whole response head that hyper wrote for its own error, its status and the
/// value of its `date` header.
fn own_error_head(buf: &[u8]) -> Option<(u16, Option<&str>)> {
    if buf.len() > MAX_OWN_HEAD {
        return None;
    }
    let text = std::str::from_utf8(buf).ok()?;
    let head = text.strip_suffix("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let rest = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))?;
    let status: u16 = rest.get(..3)?.parse().ok()?;
    error_for(status)?;
    let mut empty = false;
    let mut date = None;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" if value == "0" => empty = true,
            "date" => date = Some(value),
            "connection" => {}
            _ => return None,
        }
    }
    empty.then_some((status, date))
}

/// The answer that replaces hyper's head.
fn replacement(status: u16, date: Option<&str>) -> Vec<u8> {
    let Some((reason, code, message)) = error_for(status) else {
        return Vec::new();
    };
    let body = serde_json::to_string(&ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message,
            field: None,
        },
    })
    .unwrap_or_default();
    let date = date.map(|d| format!("date: {d}\r\n")).unwrap_or_default();
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{date}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A connection's IO that puts hyper's own error answers in the error shape.
#[derive(Debug)]
pub struct ErrorRewrite<T> {
    inner: T,
    /// A replacement answer not yet written whole, and how much of it is written.
    pending: Vec<u8>,
    written: usize,
}

impl<T> ErrorRewrite<T> {
    pub fn new(inner: T) -> Self {
        ErrorRewrite {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> ErrorRewrite<T> {
    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// Takes `buf` in as a replacement when it is hyper's own error head.
    fn take_own_error(&mut self, buf: &[u8]) -> bool {
        match own_error_head(buf) {
            Some((status, date)) => {
                self.pending = replacement(status, date);
                self.written = 0;
                true
            }
            None => false,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ErrorRewrite<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ErrorRewrite<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if this.take_own_error(buf) {
            // Taken whole; written by the next write, flush or shutdown if not now.
            if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        let mut parts = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(first), None) = (parts.next(), parts.next())
            && this.take_own_error(first)
        {
            if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(first.len()));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const DATE: &str = "Sun, 06 Dec 2026 22:00:00 GMT";

    #[test]
    fn hypers_own_heads_are_recognised_and_nothing_else() {
        let own = format!("HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: {DATE}\r\n\r\n");
        assert_eq!(own_error_head(own.as_bytes()), Some((414, Some(DATE))));
        let own = "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(own_error_head(own.as_bytes()), Some((400, None)));
        for other in [
            // An answer of the API: it names its content type.
            format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\ndate: {DATE}\r\n\r\n"
            ),
            // Another status.
            format!("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\ndate: {DATE}\r\n\r\n"),
            // A body follows, or the length is not zero.
            format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: {DATE}\r\n\r\nx"),
            format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\ndate: {DATE}\r\n\r\n"),
            // Not a whole head.
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n".to_owned(),
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_owned(),
        ] {
            assert_eq!(own_error_head(other.as_bytes()), None, "{other:?}");
        }
    }

    #[tokio::test]
    async fn an_own_error_head_goes_out_as_json_and_other_bytes_unchanged() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let mut io = ErrorRewrite::new(server);
        let head = format!(
            "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: {DATE}\r\n\r\n"
        );
        let n = io.write(head.as_bytes()).await.unwrap();
        assert_eq!(n, head.len());
        io.shutdown().await.unwrap();
        let mut out = String::new();
        let mut client = client;
        client.read_to_string(&mut out).await.unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(head.contains(&format!("date: {DATE}")), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "headers_too_large");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("bytes"),
            "{v}"
        );

        let (client, server) = tokio::io::duplex(64 * 1024);
        let mut io = ErrorRewrite::new(server);
        let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        io.write_all(answer.as_bytes()).await.unwrap();
        io.shutdown().await.unwrap();
        let mut out = String::new();
        let mut client = client;
        client.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, answer);
    }
}
