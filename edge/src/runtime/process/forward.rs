//! The output files of replicas without a `log_dir`, kept to a bounded size.
//!
//! Such a process writes to files that the agent owns (opened `O_APPEND`), not to a pipe:
//! a pipe would break when the agent dies and leave the process to die of `SIGPIPE` at
//! its next line, which adoption must not cause. The log collector reads them and ships
//! their lines as `(stdout)` and `(stderr)` (see `crate::logs::collect`).
//!
//! The supervisor looks at their size once a second: a file past [`ROTATE_AT`] is rotated
//! by copy and truncate (logrotate's `copytruncate`, the only rotation a writer that keeps
//! its descriptor allows): it is copied to `FILE.1` (replacing the last copy) and then
//! truncated. The collector knows a copy by its first bytes and reads the lines of it it
//! had not read yet before the file's new ones, so nothing is read twice. Lines written
//! between the copy and the truncation (microseconds) are lost, and so are those of a copy
//! the collector had not finished when the next rotation replaced it (more than
//! [`ROTATE_AT`] of output within about a second). A file holds at most about
//! [`ROTATE_AT`] plus a second's output; with its copy, twice that per stream.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use skerry_shared::planner::ReplicaKey;

/// A file this large is rotated.
pub(super) const ROTATE_AT: u64 = 4 * 1024 * 1024;

/// One output file kept bounded.
#[derive(Debug)]
pub(super) struct Forward {
    path: PathBuf,
}

impl Forward {
    pub(super) fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// Rotates the file if it has grown past [`ROTATE_AT`].
    pub(super) fn poll(&mut self, key: &ReplicaKey) {
        if let Err(e) = rotate_if_large(&self.path, ROTATE_AT) {
            tracing::warn!(replica = %key, file = %self.path.display(), error = %e, "cannot rotate an output file");
        }
    }
}

/// Copies `path` to `path.1` and truncates it, when it is at least `limit` bytes.
fn rotate_if_large(path: &Path, limit: u64) -> io::Result<bool> {
    let len = match fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if len < limit {
        return Ok(false);
    }
    let mut copy = path.as_os_str().to_owned();
    copy.push(".1");
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".1.tmp");
    // Hidden from the collector until it is whole: it skips nothing but dot files and
    // compressed ones, so the temporary name must not look like a log file's copy yet.
    let tmp = hidden(Path::new(&tmp));
    fs::copy(path, &tmp)?;
    fs::rename(&tmp, &copy)?;
    OpenOptions::new().write(true).open(path)?.set_len(0)?;
    Ok(true)
}

/// `dir/.name`.
fn hidden(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| format!(".{}", n.to_string_lossy()))
        .unwrap_or_default();
    path.with_file_name(name)
}

/// The last `lines` lines of a file (from its last 16 KiB), oldest first; none when it
/// cannot be read.
pub(super) fn tail_lines(path: &std::path::Path, lines: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    const WINDOW: u64 = 16 << 10;
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(WINDOW);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if file.take(WINDOW).read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut all: Vec<&str> = text.split_terminator('\n').collect();
    if start > 0 && !all.is_empty() {
        // The first line of the window may be cut.
        all.remove(0);
    }
    let skip = all.len().saturating_sub(lines);
    all[skip..].iter().map(|l| (*l).to_owned()).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_large_file_is_copied_and_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("w.c.0.stdout.log");
        fs::write(&file, "0123456789\n").unwrap();
        assert!(!rotate_if_large(&file, 100).unwrap());
        assert!(rotate_if_large(&file, 5).unwrap());
        assert_eq!(fs::read(&file).unwrap(), b"");
        assert_eq!(
            fs::read(dir.path().join("w.c.0.stdout.log.1")).unwrap(),
            b"0123456789\n"
        );
        fs::write(&file, "again\n").unwrap();
        assert!(rotate_if_large(&file, 5).unwrap());
        assert_eq!(
            fs::read(dir.path().join("w.c.0.stdout.log.1")).unwrap(),
            b"again\n"
        );
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(!rotate_if_large(&dir.path().join("missing"), 5).unwrap());
    }
}
