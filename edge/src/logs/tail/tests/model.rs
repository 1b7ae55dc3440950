//! The model-based property test: random writes, rotations and crashes against a model.

use super::*;

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
