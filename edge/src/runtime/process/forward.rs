//! The output of replicas without a `log_dir`, forwarded to the agent's log at debug.
//!
//! Such a process writes to files that the agent owns (opened `O_APPEND`), not to a pipe:
//! a pipe would break when the agent dies and leave the process to die of `SIGPIPE` at
//! its next line, which adoption must not cause. The supervisor reads new lines from the
//! files once a second and logs them; once a file has grown past 1 MiB and has been read,
//! it is truncated (the writer's next append starts again at 0; a line written between
//! the read and the truncation is lost, which only affects debug output).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use skerry_shared::planner::ReplicaKey;

/// Read at most this much per file and poll.
const CHUNK: u64 = 64 * 1024;
/// Truncate a file once it is this large and fully read.
const TRUNCATE_AT: u64 = 1024 * 1024;
/// A line longer than this is logged in pieces.
const MAX_LINE: usize = 8 * 1024;

/// One output file being forwarded.
#[derive(Debug)]
pub(super) struct Forward {
    path: PathBuf,
    stream: &'static str,
    offset: u64,
    partial: Vec<u8>,
}

impl Forward {
    /// Forwards what is appended to `path` from now on.
    pub(super) fn new(path: PathBuf, stream: &'static str) -> Self {
        let offset = std::fs::metadata(&path).map_or(0, |m| m.len());
        Self {
            path,
            stream,
            offset,
            partial: Vec::new(),
        }
    }

    /// Logs the complete lines appended since the last poll.
    pub(super) fn poll(&mut self, key: &ReplicaKey) {
        let Ok(mut file) = File::open(&self.path) else {
            return;
        };
        let Ok(len) = file.metadata().map(|m| m.len()) else {
            return;
        };
        if len < self.offset {
            // Truncated by someone else: start over.
            self.offset = 0;
            self.partial.clear();
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            let mut buf = Vec::new();
            let read = file
                .seek(SeekFrom::Start(self.offset))
                .and_then(|_| (&mut file).take(CHUNK).read_to_end(&mut buf));
            if read.is_err() {
                return;
            }
            self.offset += buf.len() as u64;
            self.emit(key, &buf);
        } else {
            self.offset = len;
            self.partial.clear();
        }
        if self.offset >= len
            && len >= TRUNCATE_AT
            && let Ok(f) = OpenOptions::new().write(true).open(&self.path)
            && f.set_len(0).is_ok()
        {
            self.offset = 0;
        }
    }

    fn emit(&mut self, key: &ReplicaKey, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' || self.partial.len() >= MAX_LINE {
                let line = String::from_utf8_lossy(&self.partial);
                tracing::debug!(replica = %key, stream = self.stream, "{line}");
                self.partial.clear();
                if b == b'\n' {
                    continue;
                }
            }
            self.partial.push(b);
        }
    }
}
