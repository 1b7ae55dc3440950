//! One poll: probing, registering, rotation and copytruncate matching, and reading.

use super::*;

/// A look at a file's first bytes.
#[derive(Debug)]
pub(super) struct Probe {
    pub(super) size: u64,
    pub(super) mtime_ns: i64,
    /// Its first [`HEAD_BYTES`] (fewer when it is shorter).
    pub(super) head: Vec<u8>,
}

/// How much text a poll may still read.
#[derive(Debug)]
pub(super) struct Budget {
    pub(super) max: usize,
    pub(super) used: usize,
    pub(super) stopped: bool,
}

impl Budget {
    pub(super) fn new(max: usize) -> Self {
        Self {
            max,
            used: 0,
            stopped: false,
        }
    }

    /// Takes a line if it fits (the first always does).
    pub(super) fn admit(&mut self, line: &str) -> bool {
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
pub(super) struct Pass<'a> {
    pub(super) dir: &'a Path,
    pub(super) listing: &'a Listing,
    pub(super) now_ns: i64,
    pub(super) budget: Budget,
    pub(super) out: Vec<FileLines>,
    /// Streams not to read further in this poll (a file of theirs could not be read, so
    /// reading a later one would break their order).
    pub(super) blocked: HashSet<String>,
    pub(super) warned: &'a mut Warned,
    /// Files not read for want of a slot.
    pub(super) waiting: u64,
    /// Where the last run in `out` ends: the line and part an entry after it would have.
    pub(super) last_end: Option<(u64, u32)>,
}

impl Pass<'_> {
    pub(super) fn run(&mut self, state: &mut State) {
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
    pub(super) fn observe(&mut self, state: &mut State, probes: &mut HashMap<FileId, Probe>) {
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
    pub(super) fn register(&mut self, state: &mut State, probes: &mut HashMap<FileId, Probe>) {
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
    pub(super) fn apply_truncations(&mut self, state: &mut State, probes: &HashMap<FileId, Probe>) {
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
    pub(super) fn latest_copy(
        &self,
        files: &[Tracked],
        original: FileId,
        generation: u32,
    ) -> Option<FileId> {
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
    pub(super) fn read(&mut self, state: &mut State, probes: &HashMap<FileId, Probe>) {
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
    pub(super) fn drain(
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
    pub(super) fn probe(&mut self, entry: &Entry) -> Option<Probe> {
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
    pub(super) fn read_file(
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

    pub(super) fn checked<T>(
        &mut self,
        id: FileId,
        path: &Path,
        result: io::Result<Option<T>>,
    ) -> Option<T> {
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
    pub(super) fn emit(
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
pub(super) fn copy_of<'a>(
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
