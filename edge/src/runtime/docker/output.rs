//! A container's own output (stdout and stderr), read from the Docker engine.
//!
//! The engine keeps each container's output with a timestamp per line. The reader asks
//! for what is newer than its cursor (the engine's `since` is in whole seconds, so lines of
//! the cursor's second come again and are skipped by their exact timestamp and count).
//! The cursor is a time, not a position in a file, so it stays valid when a container is
//! restarted by its policy or created again for a new spec. Lines are numbered per stream,
//! from 1, like the lines of a file.
//!
//! The log collector reads through an [`OutputReader`], which it gets from the agent's one
//! [`DockerEngine`](super::DockerEngine) ([`DockerEngine::output`](super::DockerEngine::output)).
//! [`OutputCursor`] is stored in the journal (postcard) as a source's log cursor: its fields
//! and their order are a stored format.

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use skerry_shared::outbox::{LogStream, MAX_LINE_BYTES, Pieces};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Where reading a container's output stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputCursor {
    /// The timestamp (unix nanoseconds) of the last line read.
    pub last_ns: i128,
    /// Lines read with exactly that timestamp.
    pub at_last: u32,
    /// The number the next stdout line gets.
    pub next_stdout: u64,
    /// The number the next stderr line gets.
    pub next_stderr: u64,
}

impl Default for OutputCursor {
    fn default() -> Self {
        Self::new()
    }
}

impl OutputCursor {
    pub fn new() -> Self {
        Self {
            last_ns: 0,
            at_last: 0,
            next_stdout: 1,
            next_stderr: 1,
        }
    }

    fn next(&mut self, stream: &LogStream) -> u64 {
        let slot = match stream {
            LogStream::Stderr => &mut self.next_stderr,
            _ => &mut self.next_stdout,
        };
        let n = *slot;
        *slot += 1;
        n
    }
}

/// Consecutive lines of one stream, numbered from `first_line`; a line longer than
/// [`MAX_LINE_BYTES`] comes in pieces that keep its number (`pieces`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLines {
    pub stream: LogStream,
    pub first_line: u64,
    pub lines: Vec<String>,
    pub pieces: Pieces,
}

impl OutputLines {
    /// The number of the line after the last (a run always ends with a whole line).
    fn next_line(&self) -> u64 {
        self.first_line + (self.lines.len() - self.pieces.continued.len()) as u64
    }
}

/// Splits an engine line (`<RFC 3339 nanos> <text>`) into its time and text.
fn split_timestamp(line: &str) -> Option<(i128, &str)> {
    let (ts, text) = line.split_once(' ').unwrap_or((line, ""));
    let t = OffsetDateTime::parse(ts, &Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos(), text))
}

/// Lines of the cursor's instant still to skip while reading again from its second.
#[derive(Debug)]
struct Replay {
    ns: i128,
    skip: u32,
}

/// Takes one engine line into `out` if it is newer than what was read; returns its bytes.
fn take(
    next: &mut OutputCursor,
    replay: &mut Replay,
    out: &mut Vec<OutputLines>,
    stream: LogStream,
    raw: &str,
) -> usize {
    let Some((ns, text)) = split_timestamp(raw) else {
        return 0;
    };
    if ns < replay.ns {
        return 0;
    }
    if ns == replay.ns && replay.skip > 0 {
        replay.skip -= 1;
        return 0;
    }
    if ns == next.last_ns {
        next.at_last += 1;
    } else {
        next.last_ns = ns;
        next.at_last = 1;
    }
    let mut bytes = 0;
    let mut rest = text;
    let number = next.next(&stream);
    if !out
        .last()
        .is_some_and(|l| l.stream == stream && l.next_line() == number)
    {
        out.push(OutputLines {
            stream: stream.clone(),
            first_line: number,
            lines: Vec::new(),
            pieces: Pieces::default(),
        });
    }
    // Never empty here: a run was just pushed if none could go on.
    let Some(run) = out.last_mut() else {
        return 0;
    };
    loop {
        let cut = if rest.len() > MAX_LINE_BYTES {
            (1..=MAX_LINE_BYTES)
                .rev()
                .find(|i| rest.is_char_boundary(*i))
                .unwrap_or(rest.len())
        } else {
            rest.len()
        };
        let (piece, tail) = rest.split_at(cut);
        if !tail.is_empty() {
            let index = u32::try_from(run.lines.len()).unwrap_or(u32::MAX);
            run.pieces.continued.push(index);
        }
        run.lines.push(piece.to_owned());
        bytes += piece.len() + 1;
        if tail.is_empty() {
            break;
        }
        rest = tail;
    }
    bytes
}

/// Reads containers' own output from the engine: all the log collector may ask of it.
#[derive(Debug, Clone)]
pub struct OutputReader {
    docker: Docker,
}

impl OutputReader {
    pub(super) fn new(docker: Docker) -> Self {
        Self { docker }
    }

    /// Reads the output of `container` newer than `cursor`, at most about `max_bytes`.
    /// A container that does not exist (yet, or any more) has nothing new.
    pub async fn read(
        &self,
        container: &str,
        cursor: &OutputCursor,
        max_bytes: usize,
    ) -> Result<(Vec<OutputLines>, OutputCursor), String> {
        read(&self.docker, container, cursor, max_bytes).await
    }
}

/// One item of the engine's stream of a container's output.
enum Item {
    Output(LogStream, bytes::Bytes),
    /// Not output (standard input).
    Skip,
    /// The container is gone: nothing more to read.
    Gone,
}

fn classify(item: Result<LogOutput, bollard::errors::Error>) -> Result<Item, String> {
    match item {
        Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
            Ok(Item::Output(LogStream::Stdout, message))
        }
        Ok(LogOutput::StdErr { message }) => Ok(Item::Output(LogStream::Stderr, message)),
        Ok(LogOutput::StdIn { .. }) => Ok(Item::Skip),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(Item::Gone),
        Err(e) => Err(e.to_string()),
    }
}

/// The last `lines` lines of a container's output, stdout and stderr together, oldest first
/// (none when the container is gone).
pub(super) async fn tail(
    docker: &Docker,
    container: &str,
    lines: usize,
) -> Result<Vec<String>, String> {
    let options = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .tail(&lines.to_string())
        .build();
    let mut out = Vec::new();
    let mut stream = docker.logs(container, Some(options));
    while let Some(item) = stream.next().await {
        let message = match classify(item)? {
            Item::Output(_, message) => message,
            Item::Skip => continue,
            Item::Gone => break,
        };
        let text = String::from_utf8_lossy(&message);
        for raw in text.split_terminator('\n') {
            out.push(raw.strip_suffix('\r').unwrap_or(raw).to_owned());
        }
    }
    let extra = out.len().saturating_sub(lines);
    out.drain(..extra);
    Ok(out)
}

/// [`OutputReader::read`].
async fn read(
    docker: &Docker,
    container: &str,
    cursor: &OutputCursor,
    max_bytes: usize,
) -> Result<(Vec<OutputLines>, OutputCursor), String> {
    let since = i32::try_from(cursor.last_ns / 1_000_000_000).unwrap_or(i32::MAX);
    let options = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .timestamps(true)
        .since(since)
        .build();
    let mut next = cursor.clone();
    let mut replay = Replay {
        ns: cursor.last_ns,
        skip: cursor.at_last,
    };
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut stream = docker.logs(container, Some(options));
    while let Some(item) = stream.next().await {
        let (kind, message) = match classify(item)? {
            Item::Output(kind, message) => (kind, message),
            Item::Skip => continue,
            Item::Gone => break,
        };
        let text = String::from_utf8_lossy(&message);
        for raw in text.split_terminator('\n') {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            bytes += take(&mut next, &mut replay, &mut out, kind.clone(), raw);
        }
        if bytes >= max_bytes {
            break;
        }
    }
    Ok((out, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cursor: &OutputCursor, lines: &[(&str, LogStream)]) -> (Vec<OutputLines>, OutputCursor) {
        let mut next = cursor.clone();
        let mut replay = Replay {
            ns: cursor.last_ns,
            skip: cursor.at_last,
        };
        let mut out = Vec::new();
        for (raw, stream) in lines {
            take(&mut next, &mut replay, &mut out, stream.clone(), raw);
        }
        (out, next)
    }

    #[test]
    fn lines_of_the_same_instant_are_read_once() {
        let a = "2026-11-22T04:27:00.000000001Z a";
        let b = "2026-11-22T04:27:00.000000001Z b";
        let c = "2026-11-22T04:27:00.5Z c";
        let (out, cur) = run(&OutputCursor::new(), &[(a, LogStream::Stdout)]);
        assert_eq!(out[0].lines, vec!["a"]);
        // The engine sends the whole second again, with one more line of the same instant.
        let (out, cur) = run(
            &cur,
            &[
                (a, LogStream::Stdout),
                (b, LogStream::Stdout),
                (c, LogStream::Stderr),
            ],
        );
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].first_line, out[0].lines.clone()),
            (2, vec!["b".to_owned()])
        );
        assert_eq!(
            (out[1].stream.clone(), out[1].first_line),
            (LogStream::Stderr, 1)
        );
        let (out, _) = run(
            &cur,
            &[
                (a, LogStream::Stdout),
                (b, LogStream::Stdout),
                (c, LogStream::Stderr),
            ],
        );
        assert!(out.is_empty());
    }

    /// The cursor is stored in the journal (postcard): its bytes do not change.
    #[test]
    fn the_stored_cursor_keeps_its_format() {
        let cursor = OutputCursor {
            last_ns: 1_795_000_000_123_456_789,
            at_last: 2,
            next_stdout: 3,
            next_stderr: 300,
        };
        let golden = [
            0xaa, 0xb4, 0xfa, 0xb2, 0xac, 0xbf, 0x8f, 0xe9, 0x31, 0x02, 0x03, 0xac, 0x02,
        ];
        assert_eq!(postcard::to_stdvec(&cursor).unwrap(), golden);
        assert_eq!(
            postcard::from_bytes::<OutputCursor>(&golden).unwrap(),
            cursor
        );
    }

    #[test]
    fn long_lines_are_cut() {
        let long = format!(
            "2026-11-22T04:27:00Z {}",
            "x".repeat(MAX_LINE_BYTES * 2 + 5)
        );
        let (out, cur) = run(&OutputCursor::new(), &[(&long, LogStream::Stdout)]);
        assert_eq!(out[0].lines.len(), 3);
        assert_eq!(out[0].lines[2].len(), 5);
        assert_eq!(out[0].pieces.continued, [0, 1], "three pieces of one line");
        assert_eq!(cur.next_stdout, 2, "the next line is line 2");
        let next = "2026-11-22T04:27:01Z next";
        let (out, _) = run(&cur, &[(next, LogStream::Stdout)]);
        assert_eq!((out[0].first_line, out[0].lines.len()), (2, 1));
    }
}
