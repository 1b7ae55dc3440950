//! The log-directory tailer: follows every file in one directory (a component's `log_dir`,
//! bind-mounted from the host) so that every line is read once, in order per file, across
//! rotations, truncations and restarts of the agent.
//!
//! [`DirTailer::poll`] returns the complete lines that are new since the last poll, and the
//! tailer's position after them ([`TailRead::state`]). The agent stores that position in its
//! journal in the same transaction as the lines it queued, and after a crash builds a new
//! tailer from the last committed position ([`DirTailer::new`]): lines read but not
//! committed are read again, committed ones never are. A poll that fails changes nothing;
//! if the caller cannot commit, it must also go back to the last committed position.
//!
//! **Files and streams.** A file is its (device, inode). The first time a file is seen with
//! at least one byte in it, it gets a stream named after its file name at that time, and
//! its lines are numbered within that stream: 1, 2, 3... A stream's numbers never restart
//! and never repeat, whatever file holds its lines.
//! - *Rename and create* (`app.log` -> `app.log.1`, a new `app.log`): the renamed file keeps
//!   its stream and is read to its end first; the new file under a stream's name continues
//!   that stream. A new file under any other name starts its own stream.
//! - *Copy and truncate* (logrotate's `copytruncate`): the copy is a new file whose first
//!   bytes are what the original held. The tailer keeps, per file, a fingerprint of its
//!   first bytes (up to [`HEAD_BYTES`], and their length), and takes a new file whose first
//!   bytes match a tracked file's fingerprint for that file's copy, unless the new file
//!   bears the name of that file's stream (then it is the new file of a rename-and-create,
//!   which may well start with the same banner). A copy is never read as a stream of its
//!   own, and is forgotten when it goes. When the original is then found truncated, the bytes of the copy
//!   from the old position to the copy's end (lines written after the last read and before
//!   the copy was made) are read first, in the original's stream, then the original from
//!   its start. Lines written between the copy and the truncation are lost (logrotate's
//!   own race).
//! - *Truncation* (the file is shorter than the position, or its first bytes changed):
//!   the file is read again from its start, in the same stream. (So is a new file that
//!   got the inode of a deleted one between two polls.)
//! - *Deletion*: a file missing from [`FORGET_AFTER_MISSES`] listings in a row is forgotten
//!   (one miss may be a rename racing the listing). At most [`MAX_TRACKED`] files are
//!   tracked: beyond it the gone ones are forgotten first (oldest first), and new files
//!   wait for room.
//!
//! **Lines.** Only complete lines (ending in `\n`) are read; `\n` and a trailing `\r` are
//! stripped, invalid UTF-8 becomes U+FFFD. A partial last line waits for its newline,
//! except that a line longer than [`MAX_LINE_BYTES`] is cut into pieces of at most that
//! many bytes (at a character boundary), and the partial last line of a file that is no
//! longer the file of its stream's name (rotated away) is read as it is at its end.
//!
//! **Order.** In one poll, the files already tracked are read in the order they were first
//! seen (so a rotated file comes before the new file of the same name), then new files. A
//! poll stops after about `max_bytes` of text (always at least one line), and says so
//! ([`TailRead::more`]).
//!
//! **I/O.** Each poll lists the directory, opens the files that may hold something new
//! (size or modification time changed, or modified in the last two seconds), seeks, reads
//! in blocks and closes them: no file stays open between polls, and one poll holds about
//! `max_bytes` plus a block. Subdirectories, symbolic links, hidden files (`.` first) and
//! compressed rotations (`.gz`, `.zst`, `.xz`, `.bz2`, `.zip`) are ignored. When the
//! directory's device number changes as a whole (a remount), positions follow by inode.
//!
//! **State.** postcard, versioned; some 40 bytes plus the stream name per tracked file.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use skerry_shared::hash::Digest;
use skerry_shared::outbox::{MAX_LINE_BYTES, Pieces};

use super::filter::NameFilter;

mod lines;
mod listing;
mod pass;
mod state;

use self::lines::*;
use self::listing::*;
use self::pass::*;
use self::state::*;

/// How many first bytes of a file its fingerprint covers.
pub const HEAD_BYTES: usize = 256;

/// The most files one tailer tracks (its state stays small). Files beyond it wait for a
/// slot (one that is gone frees one), and are counted ([`TailRead::waiting`]).
pub const MAX_TRACKED: usize = 1024;

/// How deep subdirectories are read: files of `log_dir/a/b/c/d/` are, deeper ones are not.
pub const MAX_DEPTH: usize = 4;

/// The most files one listing takes in (the rest wait, counted).
pub const MAX_LISTED: usize = 4 * MAX_TRACKED;

/// A tracked file missing from this many listings in a row is forgotten.
pub const FORGET_AFTER_MISSES: u8 = 3;

/// The most stream names remembered (beyond it, the oldest unused are forgotten).
const MAX_STREAMS: usize = 1024;

/// Copies waiting to be read after their original was truncated, per original.
const MAX_DRAINS: usize = 4;

/// The size of one read.
const BLOCK_BYTES: usize = 64 * 1024;

/// A file modified this recently is checked even when its size and time look unchanged
/// (timestamps are coarse: a truncation and rewrite can keep both).
const RECENT_NS: i64 = 2_000_000_000;

/// The endings of compressed rotations, which are not read.
const COMPRESSED: [&str; 5] = [".gz", ".zst", ".xz", ".bz2", ".zip"];

/// Tails one directory.
#[derive(Debug)]
pub struct DirTailer {
    dir: PathBuf,
    state: State,
    warned: Warned,
    /// Only the files this source owns in a shared directory (`None`: every file).
    filter: Option<NameFilter>,
}

/// What one poll read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailRead {
    /// New lines per stream, each `FileLines` a run of consecutive lines of one stream,
    /// streams in the order read.
    pub files: Vec<FileLines>,
    /// The tailer's position after these lines (postcard, small), to save with them.
    pub state: Vec<u8>,
    /// Stopped at max_bytes: poll again soon.
    pub more: bool,
    /// Files there that are not read, for want of a slot ([`MAX_TRACKED`],
    /// [`MAX_LISTED`]); also in `state` ([`waiting_in`]).
    pub waiting: u64,
}

/// Consecutive lines of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLines {
    /// The file's name when it was first seen (a rotated file keeps it).
    pub stream: String,
    /// The number of the first line (from 1 within the stream); the others follow.
    pub first_line: u64,
    /// Without their line ends: whole lines, or pieces of a long one.
    pub lines: Vec<String>,
    /// Which entries are pieces of a line: they keep its number (see
    /// [`skerry_shared::outbox::LogChunk`]).
    pub pieces: Pieces,
}

impl DirTailer {
    /// Resumes from `state` (bytes from an earlier `TailRead::state`), or starts fresh:
    /// every file already in the directory is read from its start.
    /// State that does not decode is reported through tracing::warn and the tailer starts
    /// fresh.
    pub fn new(dir: PathBuf, state: Option<&[u8]>) -> Self {
        let state = match state.map(State::decode) {
            None => State::default(),
            Some(Ok(state)) => state,
            Some(Err(e)) => {
                tracing::warn!(
                    dir = %dir.display(),
                    "saved log position does not decode ({e}): reading every file from its start"
                );
                State::default()
            }
        };
        Self {
            dir,
            state,
            warned: Warned::default(),
            filter: None,
        }
    }

    /// Reads only the files that `filter` gives this source (a directory that several
    /// sources share; see [`super::filter`]).
    pub fn with_filter(mut self, filter: NameFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Changes which files are this source's (the files it no longer takes are forgotten
    /// as if they were gone).
    pub fn set_filter(&mut self, filter: NameFilter) {
        self.filter = Some(filter);
    }

    pub fn filter(&self) -> Option<&NameFilter> {
        self.filter.as_ref()
    }

    /// Reads the complete lines that are new since the last poll, at most about
    /// `max_bytes` of text in all (always at least one line when any is there). A missing
    /// directory is not an error (nothing yet).
    ///
    /// Only listing the directory can fail, and then nothing changes. A file that cannot
    /// be read is skipped (with a warning, once), and so are the later files of its stream.
    pub fn poll(&mut self, max_bytes: usize) -> io::Result<TailRead> {
        let Some(listing) = Listing::read(&self.dir, self.filter.as_ref())? else {
            self.state.waiting = 0;
            return Ok(TailRead {
                files: Vec::new(),
                state: self.state.encode()?,
                more: false,
                waiting: 0,
            });
        };
        let mut work = self.state.clone();
        let mut pass = Pass {
            dir: &self.dir,
            listing: &listing,
            now_ns: now_ns(),
            budget: Budget::new(max_bytes),
            out: Vec::new(),
            blocked: HashSet::new(),
            warned: &mut self.warned,
            waiting: listing.unlisted,
            last_end: None,
        };
        pass.run(&mut work);
        let (files, more) = (pass.out, pass.budget.stopped);
        work.waiting = pass.waiting;
        let state = work.encode()?;
        let waiting = work.waiting;
        self.state = work;
        Ok(TailRead {
            files,
            state,
            more,
            waiting,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current position (what the last poll's `state` said).
    pub fn state(&self) -> io::Result<Vec<u8>> {
        self.state.encode()
    }
}

/// The files waiting for a slot that a saved position says (0 when it does not decode).
pub fn waiting_in(saved: &[u8]) -> u64 {
    State::decode(saved).map_or(0, |s| s.waiting)
}

#[cfg(test)]
mod tests;
