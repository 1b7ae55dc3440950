//! The agent's own runtime log: a rotating file in its data directory, and the reader that
//! answers `skerry node logs`.
//!
//! `skerry-edge run` writes its log to standard error and to `DATA/agent.log`. The file is
//! rotated when it passes [`ROTATE_BYTES`] (`agent.log.1`, then `agent.log.2`; older ones
//! are deleted), so it never takes more than about three times that on the node's disk.
//! The cloud asks for it on demand ([`read`]); the answer carries the newest lines that
//! fit the size asked for and one frame, compressed.

use std::io::{self, BufRead};
use std::path::{Path, PathBuf};

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use skerry_shared::clock::Timestamp;
use skerry_shared::frame::{MAX_FRAME_BYTES, NodeLogs};
use skerry_shared::outbox::compress_text;

/// The runtime log's file name in the agent's data directory.
pub const FILE_NAME: &str = "agent.log";

/// The size at which the file is rotated.
pub const ROTATE_BYTES: usize = 1024 * 1024;

/// Rotated files kept beside the active one.
pub const KEEP: usize = 2;

/// The most text one answer carries before compression.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Compressed bytes an answer may take: a frame with room for its header.
const MAX_COMPRESSED: usize = MAX_FRAME_BYTES - 1024;

/// The runtime log's path in `data`.
pub fn path_in(data: &Path) -> PathBuf {
    data.join(FILE_NAME)
}

/// A writer for the runtime log at `path` (created with mode 0600), rotating by size.
pub fn writer(path: &Path) -> io::Result<FileRotate<AppendCount>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut open = std::fs::OpenOptions::new();
    std::os::unix::fs::OpenOptionsExt::mode(open.read(true).create(true).append(true), 0o600);
    Ok(FileRotate::new(
        path,
        AppendCount::new(KEEP),
        ContentLimit::BytesSurpassed(ROTATE_BYTES),
        Compression::None,
        Some(open),
    ))
}

/// The files of the runtime log at `path`, oldest first.
fn files(path: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = (1..=KEEP)
        .rev()
        .map(|i| PathBuf::from(format!("{}.{i}", path.display())))
        .filter(|p| p.exists())
        .collect();
    if path.exists() {
        out.push(path.to_owned());
    }
    out
}

/// The time at the start of a log line (`2026-11-22T04:30:00.123456Z ...`), if any.
fn line_time(line: &str) -> Option<Timestamp> {
    let first = line.split_whitespace().next()?;
    // The fmt layer may colour it; the file layer does not.
    Timestamp::parse_rfc3339(first).ok()
}

/// The newest lines of the runtime log at `path` from `since` on, at most `max_bytes` (and
/// at most what one frame carries compressed), compressed.
pub fn read(path: &Path, since: Option<Timestamp>, max_bytes: usize) -> NodeLogs {
    match read_text(path, since, max_bytes.clamp(1, MAX_ANSWER_BYTES)) {
        Ok((text, truncated)) => pack(text, truncated),
        Err(e) => NodeLogs::Error(format!("the runtime log cannot be read: {e}")),
    }
}

fn read_text(
    path: &Path,
    since: Option<Timestamp>,
    max_bytes: usize,
) -> io::Result<(Vec<u8>, bool)> {
    let files = files(path);
    if files.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} does not exist", path.display()),
        ));
    }
    // Keep the newest lines: a ring of lines within max_bytes.
    let mut lines: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut bytes = 0usize;
    let mut truncated = false;
    // A line without a time of its own (a continuation) follows the verdict of the
    // line before it.
    let mut keep = since.is_none();
    for file in files {
        let reader = io::BufReader::new(std::fs::File::open(&file)?);
        for line in reader.split(b'\n') {
            let line = String::from_utf8_lossy(&line?).into_owned();
            if let Some(since) = since
                && let Some(t) = line_time(&line)
            {
                keep = t >= since;
            }
            if !keep {
                continue;
            }
            bytes += line.len() + 1;
            lines.push_back(line);
            while bytes > max_bytes {
                let Some(old) = lines.pop_front() else { break };
                bytes -= old.len() + 1;
                truncated = true;
            }
        }
    }
    let mut text = Vec::with_capacity(bytes);
    for l in lines {
        text.extend_from_slice(l.as_bytes());
        text.push(b'\n');
    }
    Ok((text, truncated))
}

/// Compresses `text`, dropping its oldest lines until it fits one frame.
fn pack(mut text: Vec<u8>, mut truncated: bool) -> NodeLogs {
    loop {
        let zstd = match compress_text(&text) {
            Ok(z) => z,
            Err(e) => return NodeLogs::Error(e.to_string()),
        };
        if zstd.len() <= MAX_COMPRESSED {
            return NodeLogs::Text {
                raw_len: u32::try_from(text.len()).unwrap_or(u32::MAX),
                zstd,
                truncated,
            };
        }
        // Keep the newest part that should fit, at a line start.
        let keep = text.len() * MAX_COMPRESSED / zstd.len() * 9 / 10;
        let cut = text.len().saturating_sub(keep);
        let start = text[cut..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(text.len(), |i| cut + i + 1);
        text.drain(..start);
        truncated = true;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use skerry_shared::outbox::decompress_text;

    use super::*;

    fn text_of(logs: &NodeLogs) -> (String, bool) {
        match logs {
            NodeLogs::Text {
                raw_len,
                zstd,
                truncated,
            } => (
                String::from_utf8(decompress_text(zstd, *raw_len as usize).unwrap()).unwrap(),
                *truncated,
            ),
            NodeLogs::Error(e) => panic!("{e}"),
        }
    }

    #[test]
    fn rotates_and_reads_the_newest_lines_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        let mut w = writer(&path).unwrap();
        for i in 0..40_000 {
            writeln!(w, "2026-11-22T04:30:{:02}.000000Z  INFO line {i}", i % 60).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        assert!(dir.path().join("agent.log.1").exists());
        let total: u64 = files(&path)
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        assert!(
            total <= (ROTATE_BYTES * (KEEP + 1) + 4096) as u64,
            "{total}"
        );
        let (text, truncated) = text_of(&read(&path, None, 10_000));
        assert!(truncated);
        assert!(text.len() <= 10_000);
        assert!(
            text.ends_with("line 39999\n"),
            "{}",
            &text[text.len() - 40..]
        );
        assert!(text.lines().count() > 100);
    }

    #[test]
    fn since_filters_by_the_line_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        std::fs::write(
            &path,
            "2026-11-22T04:00:00.000000Z  INFO old\n  continued old\n\
             2026-11-22T05:00:00.000000Z  INFO new\n  continued new\n",
        )
        .unwrap();
        let since = Timestamp::parse_rfc3339("2026-11-22T04:30:00Z").unwrap();
        let (text, truncated) = text_of(&read(&path, Some(since), 1 << 20));
        assert_eq!(
            text,
            "2026-11-22T05:00:00.000000Z  INFO new\n  continued new\n"
        );
        assert!(!truncated);
    }

    #[test]
    fn a_missing_log_is_an_error_that_says_so() {
        let dir = tempfile::tempdir().unwrap();
        match read(&path_in(dir.path()), None, 1000) {
            NodeLogs::Error(e) => assert!(e.contains("does not exist"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn incompressible_text_is_cut_to_one_frame() {
        let mut text = Vec::new();
        let mut x: u64 = 1;
        while text.len() < 3 * 1024 * 1024 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.extend_from_slice(format!("{x:016x}{:016x}\n", x.rotate_left(17)).as_bytes());
        }
        let logs = pack(text, false);
        let NodeLogs::Text {
            zstd, truncated, ..
        } = &logs
        else {
            panic!()
        };
        assert!(zstd.len() <= MAX_COMPRESSED);
        assert!(*truncated);
        let (text, _) = text_of(&logs);
        assert!(text.lines().all(|l| l.len() == 32));
    }
}
