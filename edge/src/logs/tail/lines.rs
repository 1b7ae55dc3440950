//! Reading one file: opening it checked, its first bytes, and splitting its lines.

use super::*;

/// Opens `path` if it is still the file `id`.
pub(super) fn open_checked(path: &Path, id: FileId) -> io::Result<Option<(File, fs::Metadata)>> {
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
pub(super) fn read_head(file: &File) -> io::Result<Vec<u8>> {
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
pub(super) struct Lines {
    /// Each with whether more of its line follows (a piece of a long line).
    pub(super) lines: Vec<(String, bool)>,
    /// Where the next read starts: after the last line taken.
    pub(super) offset: u64,
    /// Stopped at the budget with a line left.
    pub(super) stopped: bool,
}

/// Reads the lines of `file` from `start` to its end, or until the budget stops it. A
/// partial last line is taken at the end only when `partial_at_end`.
pub(super) fn read_lines(
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
pub(super) fn next_line(buf: &[u8], rest: bool) -> Option<(String, usize, bool)> {
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
pub(super) fn take_text(bytes: &[u8], max: usize) -> (String, usize) {
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
