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

mod model;
