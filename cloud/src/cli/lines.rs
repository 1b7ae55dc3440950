//! A streamed NDJSON answer (`--follow`), read one value at a time.

use reqwest::Method;
use serde::de::DeserializeOwned;

use super::error::{CliError, quote, root_cause};

/// A streamed NDJSON answer: one JSON value per line; blank lines are keep-alives.
#[derive(Debug)]
pub struct Lines {
    response: reqwest::Response,
    /// What was asked, as errors name it.
    method: Method,
    path: String,
    buf: Vec<u8>,
    ended: bool,
}

impl Lines {
    /// The stream of a 2xx answer to `method path`.
    pub(super) fn new(response: reqwest::Response, method: Method, path: String) -> Self {
        Lines {
            response,
            method,
            path,
            buf: Vec::new(),
            ended: false,
        }
    }

    /// The next value, or [`CliError::StreamClosed`] when the stream ends.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<T, CliError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if let Some(value) = self.decode(&line)? {
                    return Ok(value);
                }
                continue;
            }
            if self.ended {
                // A last line without a newline still counts.
                let rest = std::mem::take(&mut self.buf);
                if let Some(value) = self.decode(&rest)? {
                    return Ok(value);
                }
                return Err(CliError::StreamClosed { reason: None });
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                Ok(None) => self.ended = true,
                Err(e) => {
                    return Err(CliError::StreamClosed {
                        reason: Some(root_cause(&e)),
                    });
                }
            }
        }
    }

    fn decode<T: DeserializeOwned>(&self, line: &[u8]) -> Result<Option<T>, CliError> {
        let text = String::from_utf8_lossy(line);
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        serde_json::from_str::<T>(text)
            .map(Some)
            .map_err(|e| CliError::Unexpected {
                method: self.method.clone(),
                path: self.path.clone(),
                reason: format!("{e} in the line {}", quote(text)),
            })
    }
}
