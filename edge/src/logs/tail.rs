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

/// A file's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(meta: &fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// A fingerprint of a file's first bytes: their length and (part of) their SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Head {
    len: u16,
    hash: [u8; 8],
}

impl Head {
    /// The fingerprint of the first [`HEAD_BYTES`] of `bytes`.
    fn of(bytes: &[u8]) -> Self {
        let bytes = &bytes[..bytes.len().min(HEAD_BYTES)];
        let digest = Digest::of(bytes);
        let mut hash = [0; 8];
        hash.copy_from_slice(&digest.0[..8]);
        Self {
            // At most HEAD_BYTES (256), so it fits.
            len: bytes.len() as u16,
            hash,
        }
    }

    fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether a file whose first bytes are `head` starts with the bytes this is the
    /// fingerprint of.
    fn matches(&self, head: &[u8]) -> bool {
        head.len() >= self.len() && Head::of(&head[..self.len()]) == *self
    }
}

/// The tailer's position: what it saves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// Every stream name given out, oldest first, with its next line number.
    streams: Vec<Stream>,
    /// The tracked files, in the order they were first seen.
    files: Vec<Tracked>,
    /// Files waiting for a slot at the last poll (not saved in [`Saved::V1`]).
    #[serde(skip)]
    waiting: u64,
    /// Streams whose last line was read in part (a long line cut into pieces, the rest
    /// not written or not read yet): how many pieces of line `next_line` were given. Not
    /// saved before [`Saved::V3`].
    #[serde(skip)]
    open: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stream {
    name: String,
    next_line: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Tracked {
    id: FileId,
    /// Listings in a row that did not have it.
    missed: u8,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Kind {
    /// A file read as a stream.
    Original(Original),
    /// A copy of an original (copy-and-truncate): never read as a stream of its own.
    Copy(CopyOf),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Original {
    stream: String,
    /// Bytes read (of the current generation).
    offset: u64,
    /// The modification time when last looked at (ns since the epoch).
    mtime_ns: i64,
    /// The fingerprint of its first bytes.
    head: Head,
    /// The fingerprint before the last truncation, to know late copies.
    prev_head: Option<Head>,
    /// Truncations seen.
    generation: u32,
    /// Copies to read before the file itself, in order (after truncations).
    drains: Vec<Drain>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Drain {
    copy: FileId,
    /// Where to go on in the copy.
    offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CopyOf {
    original: FileId,
    /// The original's generation the copy was taken of.
    generation: u32,
    /// The fingerprint it matched, to notice its inode being reused.
    head: Head,
    size: u64,
}

/// The saved form, versioned. Add variants at the end only (postcard).
#[derive(Deserialize)]
enum Saved {
    V1(State),
    /// With the files waiting for a slot, for `skerry-edge status`.
    V2(State, u64),
    /// With the streams in the middle of a long line (`State::open`).
    V3(State, u64, Vec<(String, u32)>),
}

/// [`Saved`] by reference, for encoding without a copy.
#[derive(Serialize)]
enum SavedRef<'a> {
    #[allow(dead_code)]
    V1(&'a State),
    #[allow(dead_code)]
    V2(&'a State, u64),
    V3(&'a State, u64, Vec<(&'a str, u32)>),
}

/// The files waiting for a slot that a saved position says (0 when it does not decode).
pub fn waiting_in(saved: &[u8]) -> u64 {
    State::decode(saved).map_or(0, |s| s.waiting)
}

impl State {
    fn decode(bytes: &[u8]) -> Result<State, postcard::Error> {
        let mut state = match postcard::from_bytes(bytes)? {
            Saved::V1(state) => state,
            Saved::V2(mut state, waiting) => {
                state.waiting = waiting;
                state
            }
            Saved::V3(mut state, waiting, open) => {
                state.waiting = waiting;
                state.open = open.into_iter().take(MAX_STREAMS).collect();
                state
            }
        };
        // Bytes from elsewhere could hold more than this tailer would ever track.
        state.files.truncate(MAX_TRACKED);
        state.streams.truncate(MAX_STREAMS + MAX_TRACKED);
        Ok(state)
    }

    fn encode(&self) -> io::Result<Vec<u8>> {
        let open = self.open.iter().map(|(s, p)| (s.as_str(), *p)).collect();
        postcard::to_stdvec(&SavedRef::V3(self, self.waiting, open)).map_err(io::Error::other)
    }
}

/// Warnings given once (about one file, or about the limit), so polls do not repeat them.
#[derive(Debug, Default)]
struct Warned {
    files: HashSet<FileId>,
    full: bool,
}

/// One regular file of a listing.
#[derive(Debug)]
struct Entry {
    file_name: OsString,
    /// The file name as text (lossy).
    name: String,
    id: FileId,
    size: u64,
    mtime_ns: i64,
}

/// The directory's files at the start of a poll.
#[derive(Debug)]
struct Listing {
    entries: Vec<Entry>,
    by_id: HashMap<FileId, usize>,
    by_name: HashMap<String, FileId>,
    /// Files past [`MAX_LISTED`], not listed.
    unlisted: u64,
}

impl Listing {
    /// The files to tail, or `None` when the directory does not exist: those of `dir`
    /// and of its subdirectories down to [`MAX_DEPTH`] levels, at most [`MAX_LISTED`]
    /// (the rest is left for a later poll, when some are gone; see [`TailRead::waiting`]).
    /// A file in a subdirectory is named by its path from `dir` (`sub/app.log`).
    fn read(dir: &Path, filter: Option<&NameFilter>) -> io::Result<Option<Listing>> {
        let read_dir = match fs::read_dir(dir) {
            Ok(read_dir) => read_dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut entries = Vec::new();
        let mut unlisted = 0u64;
        // Directories still to list: (path from `dir`, depth, its entries).
        let mut pending = vec![(PathBuf::new(), 0usize, read_dir)];
        while let Some((rel, depth, read_dir)) = pending.pop() {
            for entry in read_dir {
                let entry = match entry {
                    Ok(entry) => entry,
                    // A subdirectory that went away while it was listed.
                    Err(e) if depth > 0 => {
                        tracing::debug!(dir = %dir.join(&rel).display(), error = %e, "cannot list a log subdirectory");
                        break;
                    }
                    Err(e) => return Err(e),
                };
                let rel_path = rel.join(entry.file_name());
                let file_name = rel_path.clone().into_os_string();
                let name = file_name.to_string_lossy().into_owned();
                let base = entry.file_name().to_string_lossy().into_owned();
                // Does not follow symbolic links: those are not tailed.
                let meta = match entry.metadata() {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) if depth > 0 => {
                        tracing::debug!(file = %dir.join(&rel_path).display(), error = %e, "cannot look at a log file");
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if meta.file_type().is_dir() {
                    if base.starts_with('.') || depth + 1 > MAX_DEPTH {
                        continue;
                    }
                    match fs::read_dir(entry.path()) {
                        Ok(sub) => pending.push((rel_path, depth + 1, sub)),
                        Err(e) => {
                            tracing::debug!(dir = %entry.path().display(), error = %e, "cannot list a log subdirectory")
                        }
                    }
                    continue;
                }
                if ignored(&base) || filter.is_some_and(|f| !f.takes(&name)) {
                    continue;
                }
                if !meta.file_type().is_file() {
                    continue;
                }
                if entries.len() >= MAX_LISTED {
                    unlisted += 1;
                    continue;
                }
                entries.push(Entry {
                    file_name,
                    name,
                    id: FileId::of(&meta),
                    size: meta.len(),
                    mtime_ns: mtime_ns(&meta),
                });
            }
        }
        let by_id = entries.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
        let by_name = entries.iter().map(|e| (e.name.clone(), e.id)).collect();
        Ok(Some(Listing {
            entries,
            by_id,
            by_name,
            unlisted,
        }))
    }

    fn get(&self, id: FileId) -> Option<&Entry> {
        self.by_id.get(&id).and_then(|&i| self.entries.get(i))
    }
}

/// Whether a file name is left alone: hidden files and compressed rotations.
fn ignored(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.') || COMPRESSED.iter().any(|ending| lower.ends_with(ending))
}

fn mtime_ns(meta: &fs::Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// A look at a file's first bytes.
#[derive(Debug)]
struct Probe {
    size: u64,
    mtime_ns: i64,
    /// Its first [`HEAD_BYTES`] (fewer when it is shorter).
    head: Vec<u8>,
}

/// How much text a poll may still read.
#[derive(Debug)]
struct Budget {
    max: usize,
    used: usize,
    stopped: bool,
}

impl Budget {
    fn new(max: usize) -> Self {
        Self {
            max,
            used: 0,
            stopped: false,
        }
    }

    /// Takes a line if it fits (the first always does).
    fn admit(&mut self, line: &str) -> bool {
        let cost = line.len() + 1;
        if self.used > 0 && self.used.saturating_add(cost) > self.max {
            self.stopped = true;
            return false;
        }
        self.used = self.used.saturating_add(cost);
        true
    }
}

/// One poll's work on a copy of the state.
struct Pass<'a> {
    dir: &'a Path,
    listing: &'a Listing,
    now_ns: i64,
    budget: Budget,
    out: Vec<FileLines>,
    /// Streams not to read further in this poll (a file of theirs could not be read, so
    /// reading a later one would break their order).
    blocked: HashSet<String>,
    warned: &'a mut Warned,
    /// Files not read for want of a slot.
    waiting: u64,
    /// Where the last run in `out` ends: the line and part an entry after it would have.
    last_end: Option<(u64, u32)>,
}

impl Pass<'_> {
    fn run(&mut self, state: &mut State) {
        remap_device(state, self.listing);
        let mut probes = HashMap::new();
        self.observe(state, &mut probes);
        self.register(state, &mut probes);
        self.apply_truncations(state, &probes);
        self.read(state, &probes);
    }

    /// Matches the tracked files with the listing: misses, and a look at the first bytes of
    /// the files that changed. A copy whose first bytes changed is another file that reuses
    /// its inode: it is forgotten here, and registered again as new.
    fn observe(&mut self, state: &mut State, probes: &mut HashMap<FileId, Probe>) {
        let mut kept = Vec::with_capacity(state.files.len());
        for mut file in std::mem::take(&mut state.files) {
            let Some(entry) = self.listing.get(file.id) else {
                file.missed = file.missed.saturating_add(1);
                if file.missed < FORGET_AFTER_MISSES {
                    kept.push(file);
                } else {
                    tracing::debug!(dir = %self.dir.display(), "forgetting a file that is gone");
                }
                continue;
            };
            file.missed = 0;
            match &mut file.kind {
                Kind::Original(original) => {
                    let idle = entry.size == original.offset
                        && entry.mtime_ns == original.mtime_ns
                        && self.now_ns.saturating_sub(entry.mtime_ns) > RECENT_NS;
                    if !idle {
                        match self.probe(entry) {
                            Some(probe) => {
                                probes.insert(file.id, probe);
                            }
                            None => {
                                self.blocked.insert(original.stream.clone());
                            }
                        }
                    }
                }
                Kind::Copy(copy) => {
                    if entry.size != copy.size
                        && let Some(probe) = self.probe(entry)
                    {
                        if !copy.head.matches(&probe.head) {
                            tracing::debug!(
                                dir = %self.dir.display(),
                                file = %entry.name,
                                "a copy's inode reused by another file"
                            );
                            continue;
                        }
                        copy.size = probe.size;
                    }
                }
            }
            kept.push(file);
        }
        state.files = kept;
    }

    /// Registers the files not seen before (with at least one byte), oldest first: each is
    /// a copy of a tracked file, or an original with the stream of its name.
    fn register(&mut self, state: &mut State, probes: &mut HashMap<FileId, Probe>) {
        let tracked: HashSet<FileId> = state.files.iter().map(|f| f.id).collect();
        let mut new: Vec<&Entry> = (self.listing.entries.iter())
            .filter(|e| e.size > 0 && !tracked.contains(&e.id))
            .collect();
        new.sort_by(|a, b| (a.mtime_ns, &a.name).cmp(&(b.mtime_ns, &b.name)));
        let mut fresh = HashSet::new();
        for entry in new {
            let Some(probe) = self.probe(entry) else {
                continue;
            };
            if probe.head.is_empty() {
                continue;
            }
            let candidates = (state.files.iter()).filter(|f| !fresh.contains(&f.id));
            let kind = match copy_of(candidates, &entry.name, &probe.head) {
                Some((original, generation, head)) => {
                    tracing::debug!(
                        dir = %self.dir.display(),
                        file = %entry.name,
                        "a copy of a tracked file: not read"
                    );
                    Kind::Copy(CopyOf {
                        original,
                        generation,
                        head,
                        size: probe.size,
                    })
                }
                None => Kind::Original(Original {
                    stream: entry.name.clone(),
                    offset: 0,
                    mtime_ns: 0,
                    head: Head::of(&probe.head),
                    prev_head: None,
                    generation: 0,
                    drains: Vec::new(),
                }),
            };
            if !make_room(&mut state.files) {
                self.waiting += 1;
                if !self.warned.full {
                    self.warned.full = true;
                    tracing::warn!(
                        dir = %self.dir.display(),
                        "more than {MAX_TRACKED} log files: new ones wait until some are gone"
                    );
                }
                continue;
            }
            if let Kind::Original(original) = &kind {
                add_stream(state, &original.stream);
            }
            fresh.insert(entry.id);
            state.files.push(Tracked {
                id: entry.id,
                missed: 0,
                kind,
            });
            probes.insert(entry.id, probe);
        }
    }

    /// Notices truncated files: their copy (if any) is queued to be read first, and the
    /// file itself is read again from its start. Also extends the fingerprints of files
    /// that were shorter than [`HEAD_BYTES`].
    fn apply_truncations(&mut self, state: &mut State, probes: &HashMap<FileId, Probe>) {
        let mut ended: Vec<String> = Vec::new();
        for i in 0..state.files.len() {
            let id = state.files[i].id;
            let Some(probe) = probes.get(&id) else {
                continue;
            };
            let Kind::Original(original) = &state.files[i].kind else {
                continue;
            };
            let truncated = probe.size < original.offset || !original.head.matches(&probe.head);
            let copy = if truncated {
                self.latest_copy(&state.files, id, original.generation)
            } else {
                None
            };
            let Kind::Original(original) = &mut state.files[i].kind else {
                continue;
            };
            if !truncated {
                if probe.head.len() > original.head.len() {
                    original.head = Head::of(&probe.head);
                }
                continue;
            }
            match copy {
                Some(copy) => {
                    if original.drains.len() >= MAX_DRAINS {
                        original.drains.remove(0);
                        tracing::warn!(
                            dir = %self.dir.display(),
                            stream = %original.stream,
                            "truncated too often to keep up: lines lost"
                        );
                    }
                    original.drains.push(Drain {
                        copy,
                        offset: original.offset,
                    });
                    tracing::debug!(
                        dir = %self.dir.display(),
                        stream = %original.stream,
                        "truncated after a copy: reading the copy's end first"
                    );
                }
                None => {
                    tracing::debug!(
                        dir = %self.dir.display(),
                        stream = %original.stream,
                        "truncated: reading again from the start"
                    );
                    // A long line it was in the middle of ends where it was cut off.
                    ended.push(original.stream.clone());
                }
            }
            original.prev_head = Some(original.head);
            original.head = Head::of(&probe.head);
            original.generation = original.generation.wrapping_add(1);
            original.offset = 0;
        }
        for stream in ended {
            if state.open.remove(&stream).is_some() {
                take_numbers(&mut state.streams, &stream, 1);
            }
        }
    }

    /// The newest copy of this generation of `original` that is there.
    fn latest_copy(&self, files: &[Tracked], original: FileId, generation: u32) -> Option<FileId> {
        files
            .iter()
            .rev()
            .filter(|f| f.missed == 0 && self.listing.get(f.id).is_some())
            .find(|f| match &f.kind {
                Kind::Copy(c) => c.original == original && c.generation == generation,
                Kind::Original(_) => false,
            })
            .map(|f| f.id)
    }

    /// Reads the originals in order, each after its pending copies, until the budget is
    /// spent.
    fn read(&mut self, state: &mut State, probes: &HashMap<FileId, Probe>) {
        let State {
            streams,
            files,
            open,
            ..
        } = state;
        for file in files.iter_mut() {
            if self.budget.stopped {
                return;
            }
            let Kind::Original(original) = &mut file.kind else {
                continue;
            };
            if file.missed > 0 || self.blocked.contains(&original.stream) {
                continue;
            }
            if !self.drain(streams, open, original) {
                continue;
            }
            let Some(probe) = probes.get(&file.id) else {
                continue;
            };
            let Some(entry) = self.listing.get(file.id) else {
                continue;
            };
            if probe.size > original.offset {
                let active = self.listing.by_name.get(&original.stream) == Some(&file.id);
                let Some(lines) = self.read_file(entry, file.id, original.offset, !active) else {
                    self.blocked.insert(original.stream.clone());
                    continue;
                };
                original.offset = lines.offset;
                self.emit(streams, open, &original.stream, lines.lines);
            }
            original.mtime_ns = probe.mtime_ns;
        }
    }

    /// Reads the copies queued for `original`. Returns whether the original itself is next.
    fn drain(
        &mut self,
        streams: &mut Vec<Stream>,
        open: &mut BTreeMap<String, u32>,
        original: &mut Original,
    ) -> bool {
        while let Some(drain) = original.drains.first_mut() {
            let copy = drain.copy;
            let Some(entry) = self.listing.get(copy) else {
                tracing::warn!(
                    dir = %self.dir.display(),
                    stream = %original.stream,
                    "the copy of a truncated file is gone before it was read: lines lost"
                );
                original.drains.remove(0);
                continue;
            };
            let Some(lines) = self.read_file(entry, copy, drain.offset, true) else {
                self.blocked.insert(original.stream.clone());
                return false;
            };
            drain.offset = lines.offset;
            self.emit(streams, open, &original.stream, lines.lines);
            if lines.stopped {
                return false;
            }
            original.drains.remove(0);
        }
        true
    }

    /// Looks at a file's first bytes. `None` (after a warning, once) when it cannot be
    /// read, or is not the listed file any more.
    fn probe(&mut self, entry: &Entry) -> Option<Probe> {
        let path = self.dir.join(&entry.file_name);
        let probe = (|| {
            let Some((file, meta)) = open_checked(&path, entry.id)? else {
                return Ok(None);
            };
            Ok(Some(Probe {
                size: meta.len(),
                mtime_ns: mtime_ns(&meta),
                head: read_head(&file)?,
            }))
        })();
        self.checked(entry.id, &path, probe)
    }

    /// Reads lines of a file from `offset`. `None` as for [`Pass::probe`].
    fn read_file(
        &mut self,
        entry: &Entry,
        id: FileId,
        offset: u64,
        partial_at_end: bool,
    ) -> Option<Lines> {
        let path = self.dir.join(&entry.file_name);
        let lines = match open_checked(&path, id) {
            Ok(Some((mut file, _))) => {
                read_lines(&mut file, offset, partial_at_end, &mut self.budget).map(Some)
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        self.checked(id, &path, lines)
    }

    fn checked<T>(&mut self, id: FileId, path: &Path, result: io::Result<Option<T>>) -> Option<T> {
        match result {
            Ok(found) => found,
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                if self.warned.files.len() >= MAX_TRACKED {
                    self.warned.files.clear();
                }
                if self.warned.files.insert(id) {
                    tracing::warn!(file = %path.display(), "cannot read a log file: {e}");
                }
                None
            }
        }
    }

    /// Numbers lines in their stream and adds them to the output.
    /// `lines`: each text with whether more of its line follows (a piece). A piece keeps
    /// its line's number; the stream's next number is taken when the line ends.
    fn emit(
        &mut self,
        streams: &mut Vec<Stream>,
        open: &mut BTreeMap<String, u32>,
        stream: &str,
        lines: Vec<(String, bool)>,
    ) {
        if lines.is_empty() {
            return;
        }
        let start = (
            next_number(streams, stream),
            open.get(stream).copied().unwrap_or(0),
        );
        let contiguous = matches!(&self.last_end, Some(end) if *end == start)
            && self.out.last().is_some_and(|l| l.stream == stream);
        if !contiguous {
            self.out.push(FileLines {
                stream: stream.to_owned(),
                first_line: start.0,
                lines: Vec::new(),
                pieces: Pieces {
                    first_part: start.1,
                    continued: Vec::new(),
                },
            });
        }
        let (mut ended, mut part) = (0u64, start.1);
        if let Some(run) = self.out.last_mut() {
            for (text, continues) in lines {
                if continues {
                    let index = u32::try_from(run.lines.len()).unwrap_or(u32::MAX);
                    run.pieces.continued.push(index);
                    part = part.saturating_add(1);
                } else {
                    ended += 1;
                    part = 0;
                }
                run.lines.push(text);
            }
        }
        let next_line = take_numbers(streams, stream, ended);
        let next_line = next_line + ended;
        if part == 0 {
            open.remove(stream);
        } else {
            open.insert(stream.to_owned(), part);
        }
        self.last_end = Some((next_line, part));
    }
}

/// Which tracked original (and generation of it) a new file named `name` whose first
/// bytes are `head` is a copy of, if any, with the fingerprint it matched. A file under a
/// stream's name is not a copy of that stream's files: it is the new file of a
/// rename-and-create rotation.
fn copy_of<'a>(
    candidates: impl Iterator<Item = &'a Tracked>,
    name: &str,
    head: &[u8],
) -> Option<(FileId, u32, Head)> {
    let mut best: Option<(FileId, u32, Head)> = None;
    for file in candidates {
        let Kind::Original(original) = &file.kind else {
            continue;
        };
        if file.missed > 0 || original.stream == name {
            continue;
        }
        let current = (original.head, original.generation);
        let previous = (original.prev_head).map(|h| (h, original.generation.wrapping_sub(1)));
        for (fingerprint, generation) in std::iter::once(current).chain(previous) {
            if fingerprint.len > 0
                && fingerprint.matches(head)
                && best.is_none_or(|(_, _, b)| fingerprint.len > b.len)
            {
                best = Some((file.id, generation, fingerprint));
            }
        }
    }
    best
}

/// Makes room for one more tracked file: forgets the oldest gone one if needed. False when
/// every tracked file is there.
fn make_room(files: &mut Vec<Tracked>) -> bool {
    if files.len() < MAX_TRACKED {
        return true;
    }
    match files.iter().position(|f| f.missed > 0) {
        Some(i) => {
            files.remove(i);
            true
        }
        None => false,
    }
}

/// Adds a stream name if it is new (its lines start at 1), forgetting the oldest stream
/// that no tracked file uses when there are too many.
fn add_stream(state: &mut State, name: &str) {
    if state.streams.iter().any(|s| s.name == name) {
        return;
    }
    if state.streams.len() >= MAX_STREAMS {
        let used: HashSet<&str> = (state.files.iter())
            .filter_map(|f| match &f.kind {
                Kind::Original(o) => Some(o.stream.as_str()),
                Kind::Copy(_) => None,
            })
            .collect();
        if let Some(i) = (state.streams.iter()).position(|s| !used.contains(s.name.as_str())) {
            state.streams.remove(i);
        }
    }
    state.streams.push(Stream {
        name: name.to_owned(),
        next_line: 1,
    });
}

/// The next line number of a stream (1 for one not seen).
fn next_number(streams: &[Stream], name: &str) -> u64 {
    streams
        .iter()
        .find(|s| s.name == name)
        .map_or(1, |s| s.next_line)
}

/// Takes `n` line numbers of a stream; returns the first.
fn take_numbers(streams: &mut Vec<Stream>, name: &str, n: u64) -> u64 {
    let index = match streams.iter().position(|s| s.name == name) {
        Some(i) => i,
        None => {
            streams.push(Stream {
                name: name.to_owned(),
                next_line: 1,
            });
            streams.len() - 1
        }
    };
    let stream = &mut streams[index];
    let first = stream.next_line;
    stream.next_line += n;
    first
}

/// When the directory's device number changed (a remount, a reboot) and the files look
/// the same otherwise, keeps their positions: every tracked file was on one device, and
/// every listed file is on one other device.
fn remap_device(state: &mut State, listing: &Listing) {
    let now: BTreeSet<u64> = listing.entries.iter().map(|e| e.id.dev).collect();
    let then: BTreeSet<u64> = state.files.iter().map(|f| f.id.dev).collect();
    let (Some(&new), Some(&old)) = (now.first(), then.first()) else {
        return;
    };
    if now.len() != 1 || then.len() != 1 || new == old {
        return;
    }
    tracing::info!(
        old,
        new,
        "the log directory's device number changed; keeping the positions"
    );
    let remap = |id: &mut FileId| {
        if id.dev == old {
            id.dev = new;
        }
    };
    for file in &mut state.files {
        remap(&mut file.id);
        match &mut file.kind {
            Kind::Original(o) => o.drains.iter_mut().for_each(|d| remap(&mut d.copy)),
            Kind::Copy(c) => remap(&mut c.original),
        }
    }
}

/// Opens `path` if it is still the file `id`.
fn open_checked(path: &Path, id: FileId) -> io::Result<Option<(File, fs::Metadata)>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if FileId::of(&meta) != id || !meta.file_type().is_file() {
        return Ok(None);
    }
    Ok(Some((file, meta)))
}

/// The first [`HEAD_BYTES`] of a file (fewer when it is shorter).
fn read_head(file: &File) -> io::Result<Vec<u8>> {
    let mut head = vec![0; HEAD_BYTES];
    let mut filled = 0;
    while filled < HEAD_BYTES {
        match file.read_at(&mut head[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(filled);
    Ok(head)
}

/// What one read of a file gave.
#[derive(Debug)]
struct Lines {
    /// Each with whether more of its line follows (a piece of a long line).
    lines: Vec<(String, bool)>,
    /// Where the next read starts: after the last line taken.
    offset: u64,
    /// Stopped at the budget with a line left.
    stopped: bool,
}

/// Reads the lines of `file` from `start` to its end, or until the budget stops it. A
/// partial last line is taken at the end only when `partial_at_end`.
fn read_lines(
    file: &mut File,
    start: u64,
    partial_at_end: bool,
    budget: &mut Budget,
) -> io::Result<Lines> {
    file.seek(SeekFrom::Start(start))?;
    let mut buf: Vec<u8> = Vec::new();
    let mut offset = start;
    let mut lines = Vec::new();
    let mut at_end = false;
    loop {
        let mut used = 0;
        while let Some((text, taken, continues)) = next_line(&buf[used..], at_end && partial_at_end)
        {
            if !budget.admit(&text) {
                return Ok(Lines {
                    lines,
                    offset: offset + used as u64,
                    stopped: true,
                });
            }
            lines.push((text, continues));
            used += taken;
        }
        buf.drain(..used);
        offset += used as u64;
        if at_end {
            return Ok(Lines {
                lines,
                offset,
                stopped: false,
            });
        }
        // What is left in `buf` is shorter than a line can be (see next_line), so the
        // buffer stays under MAX_LINE_BYTES + 2 + BLOCK_BYTES.
        let filled = buf.len();
        buf.resize(filled + BLOCK_BYTES, 0);
        let n = loop {
            match file.read(&mut buf[filled..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        buf.truncate(filled + n);
        at_end = n == 0;
    }
}

/// The line (or piece of a line) at the start of `buf`, the bytes it takes, and whether
/// more of the line follows (a piece); `None` when `buf` holds only the start of a line.
/// `rest` takes a partial line too (as the end of its line, when it fits).
fn next_line(buf: &[u8], rest: bool) -> Option<(String, usize, bool)> {
    if buf.is_empty() {
        return None;
    }
    // A line whose end is not in the first MAX_LINE_BYTES + 2 bytes (text, '\r', '\n')
    // is too long anyway: it is cut.
    let window = &buf[..buf.len().min(MAX_LINE_BYTES + 2)];
    match window.iter().position(|&b| b == b'\n') {
        Some(end) => {
            let content = &buf[..end];
            let content = content.strip_suffix(b"\r").unwrap_or(content);
            let (text, taken) = take_text(content, MAX_LINE_BYTES);
            Some(if taken == content.len() {
                (text, end + 1, false)
            } else {
                (text, taken, true)
            })
        }
        None if window.len() == MAX_LINE_BYTES + 2 || rest => {
            let (text, taken) = take_text(window, MAX_LINE_BYTES);
            Some((text, taken, taken < window.len()))
        }
        None => None,
    }
}

/// The longest start of `bytes` whose text (invalid UTF-8 as U+FFFD) fits in `max` bytes,
/// cut at a character boundary: the text and the bytes it took (at least one when `bytes`
/// is not empty).
fn take_text(bytes: &[u8], max: usize) -> (String, usize) {
    let mut text = String::new();
    let mut taken = 0;
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        if text.len() + valid.len() > max {
            let mut end = max.saturating_sub(text.len());
            while !valid.is_char_boundary(end) {
                end -= 1;
            }
            text.push_str(&valid[..end]);
            taken += end;
            break;
        }
        text.push_str(valid);
        taken += valid.len();
        let invalid = chunk.invalid();
        if !invalid.is_empty() {
            if text.len() + char::REPLACEMENT_CHARACTER.len_utf8() > max {
                break;
            }
            text.push(char::REPLACEMENT_CHARACTER);
            taken += invalid.len();
        }
    }
    if taken == 0 && !bytes.is_empty() {
        // Only with a `max` below 4: never for MAX_LINE_BYTES. Keeps the reader moving.
        return (char::REPLACEMENT_CHARACTER.to_string(), 1);
    }
    (text, taken)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write;

    use proptest::prelude::*;

    use super::*;

    /// (stream, number, text)
    type Line = (String, u64, String);

    fn line(stream: &str, number: u64, text: &str) -> Line {
        (stream.to_owned(), number, text.to_owned())
    }

    fn append(dir: &Path, name: &str, text: impl AsRef<[u8]>) {
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
            .unwrap();
        file.write_all(text.as_ref()).unwrap();
    }

    fn truncate(dir: &Path, name: &str) {
        let file = fs::OpenOptions::new()
            .write(true)
            .open(dir.join(name))
            .unwrap();
        file.set_len(0).unwrap();
    }

    fn rename(dir: &Path, from: &str, to: &str) {
        fs::rename(dir.join(from), dir.join(to)).unwrap();
    }

    /// The lines of a read, checking that each run is well formed.
    fn flat(read: &TailRead) -> Vec<Line> {
        let mut lines = Vec::new();
        for run in &read.files {
            assert!(!run.lines.is_empty(), "an empty run: {run:?}");
            for (pos, text) in positions(run).into_iter().zip(&run.lines) {
                lines.push((run.stream.clone(), pos.0, text.clone()));
            }
        }
        lines
    }

    /// (line, part, continued) of each entry of a run.
    fn positions(run: &FileLines) -> Vec<(u64, u32, bool)> {
        let chunk = skerry_shared::outbox::LogChunk {
            source: skerry_shared::outbox::LogSource {
                instance: skerry_shared::ids::Name::parse("i").unwrap(),
                component: skerry_shared::ids::Name::parse("c").unwrap(),
                replica: 0,
                stream: skerry_shared::outbox::LogStream::File(run.stream.clone()),
            },
            first_line: run.first_line,
            time: skerry_shared::clock::Timestamp(0),
            lines: run.lines.clone(),
            pieces: run.pieces.clone(),
        };
        assert!(run.pieces.valid_for(run.lines.len()), "{run:?}");
        chunk
            .positions()
            .map(|p| (p.line, p.part, p.continued))
            .collect()
    }

    /// Polls all there is, as [`step`], with each entry's (line, part, continued).
    fn step_pieces(tailer: &mut DirTailer) -> Vec<(u64, u32, bool, usize)> {
        let read = tailer.poll(usize::MAX).unwrap();
        let mut resumed = DirTailer::new(tailer.dir().to_path_buf(), Some(&read.state));
        assert!(resumed.poll(usize::MAX).unwrap().files.is_empty());
        *tailer = resumed;
        read.files
            .iter()
            .flat_map(|run| {
                positions(run)
                    .into_iter()
                    .zip(run.lines.iter().map(String::len))
                    .map(|((l, p, c), n)| (l, p, c, n))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn tailer(dir: &Path) -> DirTailer {
        DirTailer::new(dir.to_path_buf(), None)
    }

    /// Polls all there is, checks that a tailer resumed from the saved state reads nothing
    /// again, and goes on with the resumed tailer (so nothing is missed after a restart).
    fn step(tailer: &mut DirTailer) -> Vec<Line> {
        let read = tailer.poll(usize::MAX).unwrap();
        assert!(!read.more);
        let mut resumed = DirTailer::new(tailer.dir().to_path_buf(), Some(&read.state));
        let again = resumed.poll(usize::MAX).unwrap();
        assert_eq!(flat(&again), vec![], "read again after a restart");
        *tailer = resumed;
        flat(&read)
    }

    #[test]
    fn lines_arrive_across_polls() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = tailer(dir.path());
        assert_eq!(step(&mut t), vec![]);
        append(dir.path(), "a.log", "one\ntwo\n");
        assert_eq!(
            step(&mut t),
            vec![line("a.log", 1, "one"), line("a.log", 2, "two")]
        );
        append(dir.path(), "a.log", "three\n");
        assert_eq!(step(&mut t), vec![line("a.log", 3, "three")]);
        assert_eq!(step(&mut t), vec![]);
        assert_eq!(t.dir(), dir.path());
    }

    #[test]
    fn a_partial_line_waits_for_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = tailer(dir.path());
        append(dir.path(), "a.log", "one\ntw");
        assert_eq!(step(&mut t), vec![line("a.log", 1, "one")]);
        assert_eq!(step(&mut t), vec![]);
        append(dir.path(), "a.log", "o\nthr");
        assert_eq!(step(&mut t), vec![line("a.log", 2, "two")]);
        append(dir.path(), "a.log", "ee\n");
        assert_eq!(step(&mut t), vec![line("a.log", 3, "three")]);
    }

    #[test]
    fn two_files_are_two_streams() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = tailer(dir.path());
        append(dir.path(), "a.log", "a1\na2\n");
        append(dir.path(), "b.log", "b1\n");
        let mut lines = step(&mut t);
        lines.sort();
        assert_eq!(
            lines,
            vec![
                line("a.log", 1, "a1"),
                line("a.log", 2, "a2"),
                line("b.log", 1, "b1")
            ]
        );
        append(dir.path(), "b.log", "b2\n");
        append(dir.path(), "a.log", "a3\n");
        // Known files in the order first seen: a.log and b.log were new together, so
        // by modification time, then name.
        let mut lines = step(&mut t);
        lines.sort();
        assert_eq!(lines, vec![line("a.log", 3, "a3"), line("b.log", 2, "b2")]);
    }

    #[test]
    fn rename_and_create_rotation_keeps_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut t = tailer(d);
        append(d, "app.log", "1\n2\n");
        assert_eq!(
            step(&mut t),
            vec![line("app.log", 1, "1"), line("app.log", 2, "2")]
        );
        // Written before the rotation and not read yet, then after it to the old file
        // (the app has not reopened yet), then to the new file.
        append(d, "app.log", "3\n");
        rename(d, "app.log", "app.log.1");
        append(d, "app.log.1", "4\n");
        append(d, "app.log", "5\n6\n");
        append(d, "other.log", "o1\n");
        assert_eq!(
            step(&mut t),
            vec![
                line("app.log", 3, "3"),
                line("app.log", 4, "4"),
                line("app.log", 5, "5"),
                line("app.log", 6, "6"),
                line("other.log", 1, "o1"),
            ]
        );
        // Once more, with the older rotation shifted along.
        append(d, "app.log", "7\n");
        rename(d, "app.log.1", "app.log.2");
        rename(d, "app.log", "app.log.1");
        append(d, "app.log", "8\n");
        assert_eq!(
            step(&mut t),
            vec![line("app.log", 7, "7"), line("app.log", 8, "8")]
        );
        append(d, "app.log", "9\n");
        assert_eq!(step(&mut t), vec![line("app.log", 9, "9")]);
        // The new file of a rotation comes after the rotated one even when the rotated
        // one is long: stop in the middle of it.
        append(d, "app.log", "10\n11\n12\n");
        rename(d, "app.log", "app.log.3");
        append(d, "app.log", "13\n");
        let first = t.poll(6).unwrap();
        assert!(first.more);
        assert_eq!(
            flat(&first),
            vec![line("app.log", 10, "10"), line("app.log", 11, "11")]
        );
        assert_eq!(
            step(&mut t),
            vec![line("app.log", 12, "12"), line("app.log", 13, "13")]
        );
    }

    #[test]
    fn a_rotated_file_s_partial_last_line_is_read_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut t = tailer(d);
        append(d, "app.log", "1\npart");
        assert_eq!(step(&mut t), vec![line("app.log", 1, "1")]);
        rename(d, "app.log", "app.log.1");
        assert_eq!(step(&mut t), vec![line("app.log", 2, "part")]);
        append(d, "app.log", "3\n");
        assert_eq!(step(&mut t), vec![line("app.log", 3, "3")]);
    }

    #[test]
    fn a_new_file_under_the_name_is_not_taken_for_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut t = tailer(d);
        append(d, "app.log", "=== started ===\n");
        assert_eq!(step(&mut t), vec![line("app.log", 1, "=== started ===")]);
        // The new file starts with the same bytes as the old one did.
        append(d, "app.log", "a\n");
        rename(d, "app.log", "app.log.1");
        append(d, "app.log", "=== started ===\nb\n");
        assert_eq!(
            step(&mut t),
            vec![
                line("app.log", 2, "a"),
                line("app.log", 3, "=== started ==="),
                line("app.log", 4, "b"),
            ]
        );
    }

    #[test]
    fn copy_and_truncate_reads_the_copy_s_tail_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut t = tailer(d);
        append(d, "app.log", "1\n2\n");
        assert_eq!(
            step(&mut t),
            vec![line("app.log", 1, "1"), line("app.log", 2, "2")]
        );
        // Written after our last read, before the copy: only the copy has them.
        append(d, "app.log", "3\n4\n");
        fs::copy(d.join("app.log"), d.join("app.log.1")).unwrap();
        truncate(d, "app.log");
        append(d, "app.log", "5\n");
        assert_eq!(
            step(&mut t),
            vec![
                line("app.log", 3, "3"),
                line("app.log", 4, "4"),
                line("app.log", 5, "5"),
            ]
        );
        append(d, "app.log", "6\n");
        assert_eq!(step(&mut t), vec![line("app.log", 6, "6")]);
        // Again, with the older copy shifted along (logrotate's `rotate 2`).
        append(d, "app.log", "7\n");
        rename(d, "app.log.1", "app.log.2");
        fs::copy(d.join("app.log"), d.join("app.log.1")).unwrap();
        truncate(d, "app.log");
        append(d, "app.log", "8\n");
        assert_eq!(
            step(&mut t),
            vec![line("app.log", 7, "7"), line("app.log", 8, "8")]
        );
        // The copies are tracked as copies, and forgotten when they go.
        let copies = |t: &DirTailer| {
            (t.state.files.iter())
                .filter(|f| matches!(f.kind, Kind::Copy(_)))
                .count()
        };
        assert_eq!(copies(&t), 2);
        fs::remove_file(d.join("app.log.2")).unwrap();
        for _ in 0..FORGET_AFTER_MISSES {
            assert_eq!(step(&mut t), vec![]);
        }
        assert_eq!(copies(&t), 1);
    }

    #[test]
    fn copy_and_truncate_in_small_polls_reads_the_copy_first() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut t = tailer(d);
        append(d, "app.log", "1\n");
        assert_eq!(step(&mut t), vec![line("app.log", 1, "1")]);
        append(d, "app.log", "2\n3\n4\n");
        fs::copy(d.join("app.log"), d.join("app.log.1")).unwrap();
        truncate(d, "app.log");
        append(d, "app.log", "5\n6\n");
        let mut committed = t.state().unwrap();
        let mut all = Vec::new();
        loop {
            // A crash after every poll: only the saved state goes on.
            let mut t = DirTailer::new(d.to_path_buf(), Some(&committed));
            let read = t.poll(1).unwrap();
            all.extend(flat(&read));
            committed = read.state;
            if !read.more {
                break;
            }
        }
        let expected: Vec<Line> = (2..=6)
            .map(|n| line("app.log", n, &n.to_string()))
            .collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn a_copy_seen_before_the_truncation_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut t = tailer(d);
        append(d, "app.log", "1\n");
        assert_eq!(step(&mut t), vec![line("app.log", 1, "1")]);
        append(d, "app.log", "2\n");
        fs::copy(d.join("app.log"), d.join("app.log.1")).unwrap();
        assert_eq!(step(&mut t), vec![line("app.log", 2, "2")]);
        append(d, "app.log", "3\n");
        assert_eq!(step(&mut t), vec![line("app.log", 3, "3")]);
        truncate(d, "app.log");
        append(d, "app.log", "4\n");
        assert_eq!(step(&mut t), vec![line("app.log", 4, "4")]);
    }

    #[test]
    fn plain_truncation_starts_over_in_the_same_stream() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut t = tailer(d);
        append(d, "app.log", "1\n2\n");
        assert_eq!(step(&mut t).len(), 2);
        truncate(d, "app.log");
        assert_eq!(step(&mut t), vec![]);
        append(d, "app.log", "3\n");
        assert_eq!(step(&mut t), vec![line("app.log", 3, "3")]);
        // Truncated and written past the old position before the next poll: the first
        // bytes changed.
        truncate(d, "app.log");
        append(d, "app.log", "fourth line, a long one\n");
        assert_eq!(
            step(&mut t),
            vec![line("app.log", 4, "fourth line, a long one")]
        );
    }

    #[test]
    fn an_old_file_rewritten_to_the_same_size_is_noticed_by_its_time() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let set_mtime = |secs_ago: u64| {
            let file = fs::OpenOptions::new()
                .write(true)
                .open(d.join("a.log"))
                .unwrap();
            let when = SystemTime::now() - std::time::Duration::from_secs(secs_ago);
            file.set_modified(when).unwrap();
        };
        let mut t = tailer(d);
        append(d, "a.log", "1\n");
        set_mtime(3600);
        assert_eq!(step(&mut t), vec![line("a.log", 1, "1")]);
        // Not recent and unchanged: not even opened.
        assert_eq!(step(&mut t), vec![]);
        truncate(d, "a.log");
        append(d, "a.log", "2\n");
        set_mtime(3599);
        assert_eq!(step(&mut t), vec![line("a.log", 2, "2")]);
    }

    #[test]
    fn a_crash_before_the_commit_reads_the_uncommitted_lines_again() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut t = tailer(d);
        append(d, "app.log", "1\n2\n");
        let committed = t.poll(usize::MAX).unwrap().state;
        append(d, "app.log", "3\n4\n");
        let lost = t.poll(usize::MAX).unwrap();
        assert_eq!(
            flat(&lost),
            vec![line("app.log", 3, "3"), line("app.log", 4, "4")]
        );
        // The journal did not commit `lost`; a rotation happens meanwhile.
        rename(d, "app.log", "app.log.1");
        append(d, "app.log", "5\n");
        let mut t = DirTailer::new(d.to_path_buf(), Some(&committed));
        assert_eq!(
            step(&mut t),
            vec![
                line("app.log", 3, "3"),
                line("app.log", 4, "4"),
                line("app.log", 5, "5"),
            ]
        );
    }

    #[test]
    fn max_bytes_bounds_a_poll_and_says_there_is_more() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut t = tailer(d);
        for i in 0..10 {
            append(d, "a.log", format!("line-{i:02}\n")); // 8 bytes with its end
        }
        let read = t.poll(20).unwrap();
        assert!(read.more);
        assert_eq!(
            flat(&read),
            vec![line("a.log", 1, "line-00"), line("a.log", 2, "line-01")]
        );
        // Always at least one line.
        let read = t.poll(0).unwrap();
        assert!(read.more);
        assert_eq!(flat(&read), vec![line("a.log", 3, "line-02")]);
        let read = t.poll(8 * 7).unwrap();
        assert!(!read.more);
        assert_eq!(flat(&read).len(), 7);
        assert_eq!(flat(&read)[6], line("a.log", 10, "line-09"));
        let read = t.poll(1).unwrap();
        assert!(!read.more);
        assert!(read.files.is_empty());
    }

    #[test]
    fn a_long_line_is_cut_into_pieces_that_keep_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut t = tailer(d);
        let long = "a".repeat(2 * MAX_LINE_BYTES + 10);
        append(d, "a.log", format!("{long}\nnext\n"));
        let m = MAX_LINE_BYTES;
        assert_eq!(
            step_pieces(&mut t),
            vec![
                (1, 0, true, m),
                (1, 1, true, m),
                (1, 2, false, 10),
                (2, 0, false, 4)
            ],
            "pieces of line 1, then line 2"
        );
        // Cut at a character boundary; a line of exactly MAX_LINE_BYTES (with \r\n) is one.
        let euros = "€".repeat(MAX_LINE_BYTES / 3 + 1);
        let exact = "b".repeat(MAX_LINE_BYTES);
        append(d, "a.log", format!("{euros}\n{exact}\r\n"));
        let per_piece = MAX_LINE_BYTES / 3;
        assert_eq!(
            step(&mut t),
            vec![
                line("a.log", 3, &"€".repeat(per_piece)),
                line("a.log", 3, &"€".repeat(MAX_LINE_BYTES / 3 + 1 - per_piece)),
                line("a.log", 4, &exact),
            ]
        );
        // A long line still being written: its full pieces come, the rest waits, and the
        // rest keeps the line's number, also after a restart (`step` resumes).
        append(d, "a.log", "c".repeat(MAX_LINE_BYTES + 100));
        assert_eq!(step_pieces(&mut t), vec![(5, 0, true, m)]);
        append(d, "a.log", "c\nd\n");
        assert_eq!(
            step_pieces(&mut t),
            vec![(5, 1, false, 101), (6, 0, false, 1)]
        );
        // Truncated in the middle of a long line: that line ends there.
        append(d, "a.log", "e".repeat(MAX_LINE_BYTES + 2));
        assert_eq!(step_pieces(&mut t), vec![(7, 0, true, m)]);
        truncate(d, "a.log");
        append(d, "a.log", "after the truncation, a long one\n");
        assert_eq!(step_pieces(&mut t), vec![(8, 0, false, 32)]);
    }

    #[test]
    fn line_ends_and_invalid_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut t = tailer(d);
        append(d, "a.log", b"crlf\r\n\nbad \xff\xfe byte\n\r\n");
        assert_eq!(
            step(&mut t),
            vec![
                line("a.log", 1, "crlf"),
                line("a.log", 2, ""),
                line("a.log", 3, "bad \u{FFFD}\u{FFFD} byte"),
                line("a.log", 4, ""),
            ]
        );
    }

    #[test]
    fn hidden_compressed_and_other_entries_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in [
            ".hidden",
            "app.log.1.gz",
            "app.log.2.zst",
            "a.xz",
            "b.bz2",
            "c.ZIP",
        ] {
            append(d, name, "no\n");
        }
        fs::create_dir(d.join(".hidden-dir")).unwrap();
        append(&d.join(".hidden-dir"), "inner.log", "no\n");
        append(d, "app.log", "yes\n");
        std::os::unix::fs::symlink(d.join("app.log"), d.join("link.log")).unwrap();
        std::os::unix::fs::symlink(d.join(".hidden-dir"), d.join("linked-dir")).unwrap();
        // An empty file waits for its first byte.
        append(d, "empty.log", "");
        let mut t = tailer(d);
        assert_eq!(step(&mut t), vec![line("app.log", 1, "yes")]);
        append(d, "empty.log", "now\n");
        assert_eq!(step(&mut t), vec![line("empty.log", 1, "now")]);
    }

    #[test]
    fn subdirectories_are_read_to_a_bounded_depth() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut deep = d.to_path_buf();
        let mut names = Vec::new();
        for level in 1..=MAX_DEPTH + 1 {
            deep = deep.join(format!("l{level}"));
            fs::create_dir(&deep).unwrap();
            append(&deep, "x.log", format!("{level}\n"));
            let rel = deep.strip_prefix(d).unwrap().join("x.log");
            names.push(rel.to_string_lossy().into_owned());
        }
        let mut t = tailer(d);
        let mut got = step(&mut t);
        got.sort();
        let mut expected: Vec<Line> = (1..=MAX_DEPTH)
            .map(|level| line(&names[level - 1], 1, &level.to_string()))
            .collect();
        expected.sort();
        assert_eq!(got, expected, "files down to {MAX_DEPTH} levels, no deeper");
        // Rotation inside a subdirectory keeps the stream, named by its path.
        let sub = d.join("l1");
        append(&sub, "x.log", "more\n");
        rename(&sub, "x.log", "x.log.1");
        append(&sub, "x.log", "new\n");
        assert_eq!(
            step(&mut t),
            vec![line("l1/x.log", 2, "more"), line("l1/x.log", 3, "new")]
        );
    }

    #[test]
    fn files_beyond_the_limit_wait_and_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for i in 0..MAX_TRACKED + 5 {
            // Each its own first bytes: a file that starts as a tracked one would be its copy.
            append(d, &format!("f{i:05}.log"), format!("x {i}\n"));
        }
        let mut t = tailer(d);
        let read = t.poll(usize::MAX).unwrap();
        assert_eq!(read.files.len(), MAX_TRACKED);
        assert_eq!(read.waiting, 5);
        assert_eq!(waiting_in(&read.state), 5, "saved with the position");
        // Five go: the five that waited are read.
        for i in 0..5 {
            fs::remove_file(d.join(format!("f{i:05}.log"))).unwrap();
        }
        let mut read = t.poll(usize::MAX).unwrap();
        for _ in 0..FORGET_AFTER_MISSES {
            if read.waiting == 0 {
                break;
            }
            read = t.poll(usize::MAX).unwrap();
        }
        assert_eq!(read.waiting, 0);
        assert_eq!(read.files.len(), 5);
        assert_eq!(waiting_in(&read.state), 0);
        // A position saved before the count was kept reads as none waiting.
        let v1 = postcard::to_stdvec(&SavedRef::V1(&t.state)).unwrap();
        assert_eq!(waiting_in(&v1), 0);
        assert!(DirTailer::new(d.to_path_buf(), Some(&v1)).poll(1).is_ok());
    }

    #[test]
    fn a_missing_directory_is_nothing_yet() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        let mut t = DirTailer::new(logs.clone(), None);
        let read = t.poll(usize::MAX).unwrap();
        assert!(read.files.is_empty() && !read.more);
        fs::create_dir(&logs).unwrap();
        append(&logs, "a.log", "1\n");
        assert_eq!(step(&mut t), vec![line("a.log", 1, "1")]);
        // The directory goes away and comes back: positions are kept meanwhile.
        fs::rename(&logs, dir.path().join("aside")).unwrap();
        assert_eq!(step(&mut t), vec![]);
        fs::rename(dir.path().join("aside"), &logs).unwrap();
        append(&logs, "a.log", "2\n");
        assert_eq!(step(&mut t), vec![line("a.log", 2, "2")]);
    }

    #[test]
    fn state_that_does_not_decode_starts_fresh() {
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), "a.log", "1\n");
        let mut t = DirTailer::new(dir.path().to_path_buf(), Some(b"\xff\xff\xff"));
        assert_eq!(step(&mut t), vec![line("a.log", 1, "1")]);
        let mut t = DirTailer::new(dir.path().to_path_buf(), Some(&[]));
        assert_eq!(step(&mut t), vec![line("a.log", 1, "1")]);
    }

    #[test]
    fn deleted_files_are_forgotten_but_their_stream_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut t = tailer(d);
        append(d, "a.log", "1\n2\n");
        assert_eq!(step(&mut t).len(), 2);
        fs::remove_file(d.join("a.log")).unwrap();
        for _ in 0..FORGET_AFTER_MISSES {
            assert_eq!(step(&mut t), vec![]);
        }
        assert!(t.state.files.is_empty());
        append(d, "a.log", "3\n");
        assert_eq!(step(&mut t), vec![line("a.log", 3, "3")]);
    }

    #[test]
    fn a_new_device_number_keeps_the_positions() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut t = tailer(d);
        append(d, "a.log", "1\n");
        assert_eq!(step(&mut t).len(), 1);
        for file in &mut t.state.files {
            file.id.dev += 1;
        }
        append(d, "a.log", "2\n");
        assert_eq!(step(&mut t), vec![line("a.log", 2, "2")]);
    }

    #[test]
    fn the_state_stays_small() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for i in 0..10 {
            append(d, &format!("file-{i}.log"), "a line\n");
        }
        let mut t = tailer(d);
        let read = t.poll(usize::MAX).unwrap();
        assert_eq!(read.files.len(), 10);
        assert!(read.state.len() < 10 * 56, "{} bytes", read.state.len());
    }

    #[test]
    fn text_is_cut_at_character_boundaries() {
        assert_eq!(take_text("aé".as_bytes(), 2), ("a".to_owned(), 1));
        assert_eq!(take_text(b"a\xffb", 4), ("a\u{FFFD}".to_owned(), 2));
        assert_eq!(take_text(b"a\xffb", 3), ("a".to_owned(), 1));
        assert_eq!(take_text(b"\xff", 1), ("\u{FFFD}".to_owned(), 1));
        assert_eq!(take_text(b"", 10), (String::new(), 0));
        assert_eq!(next_line(b"abc", false), None);
        assert_eq!(next_line(b"abc", true), Some(("abc".to_owned(), 3, false)));
        assert_eq!(
            next_line(b"ab\r\ncd", false),
            Some(("ab".to_owned(), 4, false))
        );
    }

    const BASES: [&str; 2] = ["app.log", "other.log"];

    #[derive(Debug, Clone)]
    enum Op {
        Append {
            file: usize,
            lines: usize,
            pad: usize,
            partial: bool,
        },
        Rotate {
            file: usize,
        },
        CopyTruncate {
            file: usize,
        },
        Poll {
            max: usize,
            commit: bool,
        },
        Restart,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..2usize, 1..5usize, 0..40usize, any::<bool>())
                .prop_map(|(file, lines, pad, partial)| Op::Append { file, lines, pad, partial }),
            1 => (0..2usize).prop_map(|file| Op::Rotate { file }),
            1 => (0..2usize).prop_map(|file| Op::CopyTruncate { file }),
            4 => (prop_oneof![Just(usize::MAX), 1..200usize], prop::bool::weighted(0.8))
                .prop_map(|(max, commit)| Op::Poll { max, commit }),
            1 => Just(Op::Restart),
        ]
    }

    /// What the app writes: every line has a unique number, and belongs to an origin (a
    /// file's content between rotations and truncations).
    struct App {
        dir: PathBuf,
        next_id: u64,
        rotations: u64,
        /// Per file: the rest of a line half written.
        pending: [Option<String>; 2],
        /// Per file: the origin of what it is writing now.
        origin: [u64; 2],
        origins: u64,
        /// Every line written: id -> (file, origin).
        written: BTreeMap<u64, (usize, u64)>,
    }

    impl App {
        fn new_line(&mut self, file: usize, pad: usize) -> String {
            let id = self.next_id;
            self.next_id += 1;
            self.written.insert(id, (file, self.origin[file]));
            format!("{} {id} {}", BASES[file], "x".repeat(pad))
        }

        fn append(&mut self, file: usize, lines: usize, pad: usize, partial: bool) {
            let mut text = self.pending[file].take().unwrap_or_default();
            for _ in 0..lines {
                text.push_str(&self.new_line(file, pad));
                text.push('\n');
            }
            if partial {
                let line = self.new_line(file, pad);
                let (start, rest) = line.split_at(line.len() / 2);
                text.push_str(start);
                self.pending[file] = Some(format!("{rest}\n"));
            }
            append(&self.dir, BASES[file], text);
        }

        fn finish_line(&mut self, file: usize) {
            if let Some(rest) = self.pending[file].take() {
                append(&self.dir, BASES[file], rest);
            }
        }

        fn new_origin(&mut self, file: usize) {
            self.origin[file] = self.origins;
            self.origins += 1;
        }

        fn rotate(&mut self, file: usize) {
            self.finish_line(file);
            self.rotations += 1;
            let (name, rotated) = (BASES[file], format!("{}.{}", BASES[file], self.rotations));
            if self.dir.join(name).exists() {
                rename(&self.dir, name, &rotated);
            }
            fs::File::create(self.dir.join(name)).unwrap();
            self.new_origin(file);
        }

        fn copy_truncate(&mut self, file: usize) {
            self.finish_line(file);
            self.rotations += 1;
            let (name, copy) = (BASES[file], format!("{}.{}", BASES[file], self.rotations));
            if self.dir.join(name).exists() {
                fs::copy(self.dir.join(name), self.dir.join(copy)).unwrap();
                truncate(&self.dir, name);
            }
            self.new_origin(file);
        }
    }

    /// What the agent committed.
    #[derive(Default)]
    struct Journal {
        state: Option<Vec<u8>>,
        next_line: HashMap<String, u64>,
        /// id -> (stream, number)
        lines: BTreeMap<u64, (String, u64)>,
    }

    impl Journal {
        fn commit(&mut self, read: TailRead, app: &App) -> Result<(), TestCaseError> {
            for run in read.files {
                let next = self.next_line.entry(run.stream.clone()).or_insert(1);
                prop_assert_eq!(run.first_line, *next, "a gap or a repeat in {}", run.stream);
                for text in &run.lines {
                    let id: Option<u64> = text.split(' ').nth(1).and_then(|id| id.parse().ok());
                    let Some(id) = id else {
                        return Err(TestCaseError::fail(format!("not a whole line: {text:?}")));
                    };
                    let Some(&(file, _)) = app.written.get(&id) else {
                        return Err(TestCaseError::fail(format!("never written: {text:?}")));
                    };
                    prop_assert!(
                        run.stream.starts_with(BASES[file]),
                        "{text} in {}",
                        run.stream
                    );
                    prop_assert!(
                        self.lines.insert(id, (run.stream.clone(), *next)).is_none(),
                        "read twice: {}",
                        text
                    );
                    *next += 1;
                }
            }
            self.state = Some(read.state);
            Ok(())
        }
    }

    fn run_ops(ops: Vec<Op>) -> Result<(), TestCaseError> {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let mut app = App {
            dir: d.clone(),
            next_id: 0,
            rotations: 0,
            pending: [None, None],
            origin: [0, 1],
            origins: 2,
            written: BTreeMap::new(),
        };
        let mut journal = Journal::default();
        let mut tailer = DirTailer::new(d.clone(), None);
        for op in ops {
            match op {
                Op::Append {
                    file,
                    lines,
                    pad,
                    partial,
                } => app.append(file, lines, pad, partial),
                Op::Rotate { file } => app.rotate(file),
                Op::CopyTruncate { file } => app.copy_truncate(file),
                Op::Poll { max, commit } => {
                    let read = tailer.poll(max).unwrap();
                    if commit {
                        journal.commit(read, &app)?;
                    } else {
                        // Killed before the journal committed.
                        tailer = DirTailer::new(d.clone(), journal.state.as_deref());
                    }
                }
                Op::Restart => tailer = DirTailer::new(d.clone(), journal.state.as_deref()),
            }
        }
        app.finish_line(0);
        app.finish_line(1);
        loop {
            let read = tailer.poll(usize::MAX).unwrap();
            prop_assert!(!read.more);
            let done = read.files.is_empty();
            journal.commit(read, &app)?;
            if done {
                break;
            }
        }
        // Every line once.
        let written: Vec<u64> = app.written.keys().copied().collect();
        let read: Vec<u64> = journal.lines.keys().copied().collect();
        prop_assert_eq!(read, written);
        // In order per stream, and each origin in one stream.
        let mut streams: HashMap<&str, Vec<(u64, u64)>> = HashMap::new();
        let mut origins: HashMap<u64, &str> = HashMap::new();
        for (id, (stream, number)) in &journal.lines {
            streams.entry(stream).or_default().push((*number, *id));
            let origin = app.written[id].1;
            let first = origins.entry(origin).or_insert(stream);
            prop_assert_eq!(*first, stream.as_str(), "origin {} in two streams", origin);
        }
        for (stream, mut lines) in streams {
            lines.sort();
            prop_assert!(
                lines.windows(2).all(|w| w[0].1 < w[1].1),
                "out of order in {}: {:?}",
                stream,
                lines
            );
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_line_arrives_once_in_order_across_rotations_and_crashes(
            ops in prop::collection::vec(op(), 1..80)
        ) {
            run_ops(ops)?;
        }
    }
}
