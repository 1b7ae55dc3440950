//! Listing the directory: its entries, their identities, and a remount.

use super::*;

/// Warnings given once (about one file, or about the limit), so polls do not repeat them.
#[derive(Debug, Default)]
pub(super) struct Warned {
    pub(super) files: HashSet<FileId>,
    pub(super) full: bool,
}

/// One regular file of a listing.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) file_name: OsString,
    /// The file name as text (lossy).
    pub(super) name: String,
    pub(super) id: FileId,
    pub(super) size: u64,
    pub(super) mtime_ns: i64,
}

/// The directory's files at the start of a poll.
#[derive(Debug)]
pub(super) struct Listing {
    pub(super) entries: Vec<Entry>,
    pub(super) by_id: HashMap<FileId, usize>,
    pub(super) by_name: HashMap<String, FileId>,
    /// Files past [`MAX_LISTED`], not listed.
    pub(super) unlisted: u64,
}

impl Listing {
    /// The files to tail, or `None` when the directory does not exist: those of `dir`
    /// and of its subdirectories down to [`MAX_DEPTH`] levels, at most [`MAX_LISTED`]
    /// (the rest is left for a later poll, when some are gone; see [`TailRead::waiting`]).
    /// A file in a subdirectory is named by its path from `dir` (`sub/app.log`).
    pub(super) fn read(dir: &Path, filter: Option<&NameFilter>) -> io::Result<Option<Listing>> {
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

    pub(super) fn get(&self, id: FileId) -> Option<&Entry> {
        self.by_id.get(&id).and_then(|&i| self.entries.get(i))
    }
}

/// Whether a file name is left alone: hidden files and compressed rotations.
pub(super) fn ignored(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.') || COMPRESSED.iter().any(|ending| lower.ends_with(ending))
}

pub(super) fn mtime_ns(meta: &fs::Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

pub(super) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// When the directory's device number changed (a remount, a reboot) and the files look
/// the same otherwise, keeps their positions: every tracked file was on one device, and
/// every listed file is on one other device.
pub(super) fn remap_device(state: &mut State, listing: &Listing) {
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
