//! The persisted position: file identities, fingerprints, streams, and its postcard encoding.

use super::*;

/// A file's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(super) struct FileId {
    pub(super) dev: u64,
    pub(super) ino: u64,
}

impl FileId {
    pub(super) fn of(meta: &fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// A fingerprint of a file's first bytes: their length and (part of) their SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Head {
    pub(super) len: u16,
    pub(super) hash: [u8; 8],
}

impl Head {
    /// The fingerprint of the first [`HEAD_BYTES`] of `bytes`.
    pub(super) fn of(bytes: &[u8]) -> Self {
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

    pub(super) fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether a file whose first bytes are `head` starts with the bytes this is the
    /// fingerprint of.
    pub(super) fn matches(&self, head: &[u8]) -> bool {
        head.len() >= self.len() && Head::of(&head[..self.len()]) == *self
    }
}

/// The tailer's position: what it saves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct State {
    /// Every stream name given out, oldest first, with its next line number.
    pub(super) streams: Vec<Stream>,
    /// The tracked files, in the order they were first seen.
    pub(super) files: Vec<Tracked>,
    /// Files waiting for a slot at the last poll (not saved in [`Saved::V1`]).
    #[serde(skip)]
    pub(super) waiting: u64,
    /// Streams whose last line was read in part (a long line cut into pieces, the rest
    /// not written or not read yet): how many pieces of line `next_line` were given. Not
    /// saved before [`Saved::V3`].
    #[serde(skip)]
    pub(super) open: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Stream {
    pub(super) name: String,
    pub(super) next_line: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Tracked {
    pub(super) id: FileId,
    /// Listings in a row that did not have it.
    pub(super) missed: u8,
    pub(super) kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Kind {
    /// A file read as a stream.
    Original(Original),
    /// A copy of an original (copy-and-truncate): never read as a stream of its own.
    Copy(CopyOf),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Original {
    pub(super) stream: String,
    /// Bytes read (of the current generation).
    pub(super) offset: u64,
    /// The modification time when last looked at (ns since the epoch).
    pub(super) mtime_ns: i64,
    /// The fingerprint of its first bytes.
    pub(super) head: Head,
    /// The fingerprint before the last truncation, to know late copies.
    pub(super) prev_head: Option<Head>,
    /// Truncations seen.
    pub(super) generation: u32,
    /// Copies to read before the file itself, in order (after truncations).
    pub(super) drains: Vec<Drain>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Drain {
    pub(super) copy: FileId,
    /// Where to go on in the copy.
    pub(super) offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct CopyOf {
    pub(super) original: FileId,
    /// The original's generation the copy was taken of.
    pub(super) generation: u32,
    /// The fingerprint it matched, to notice its inode being reused.
    pub(super) head: Head,
    pub(super) size: u64,
}

/// The saved form, versioned. Add variants at the end only (postcard).
#[derive(Deserialize)]
pub(super) enum Saved {
    V1(State),
    /// With the files waiting for a slot, for `skerry-edge status`.
    V2(State, u64),
    /// With the streams in the middle of a long line (`State::open`).
    V3(State, u64, Vec<(String, u32)>),
}

/// [`Saved`] by reference, for encoding without a copy.
#[derive(Serialize)]
pub(super) enum SavedRef<'a> {
    #[allow(dead_code)]
    V1(&'a State),
    #[allow(dead_code)]
    V2(&'a State, u64),
    V3(&'a State, u64, Vec<(&'a str, u32)>),
}

impl State {
    pub(super) fn decode(bytes: &[u8]) -> Result<State, postcard::Error> {
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

    pub(super) fn encode(&self) -> io::Result<Vec<u8>> {
        let open = self.open.iter().map(|(s, p)| (s.as_str(), *p)).collect();
        postcard::to_stdvec(&SavedRef::V3(self, self.waiting, open)).map_err(io::Error::other)
    }
}

/// Makes room for one more tracked file: forgets the oldest gone one if needed. False when
/// every tracked file is there.
pub(super) fn make_room(files: &mut Vec<Tracked>) -> bool {
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
pub(super) fn add_stream(state: &mut State, name: &str) {
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
pub(super) fn next_number(streams: &[Stream], name: &str) -> u64 {
    streams
        .iter()
        .find(|s| s.name == name)
        .map_or(1, |s| s.next_line)
}

/// Takes `n` line numbers of a stream; returns the first.
pub(super) fn take_numbers(streams: &mut Vec<Stream>, name: &str, n: u64) -> u64 {
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
