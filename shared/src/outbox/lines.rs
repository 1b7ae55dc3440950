//! Log lines as they travel: where they come from, and runs of them with their numbers
//! in the file (long lines in pieces that keep their number).

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::Name;
use crate::planner::ReplicaKey;

/// The longest log line kept; a longer one is cut into pieces of this size.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Where a log line comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LogSource {
    pub instance: Name,
    pub component: Name,
    pub replica: u32,
    pub stream: LogStream,
}

impl LogSource {
    pub fn replica_key(&self) -> ReplicaKey {
        ReplicaKey::new(&self.instance, &self.component, self.replica)
    }
}

/// A file in the component's `log_dir` (by its name there when first seen; the lines of a
/// rotated file keep it), or the container's own output.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LogStream {
    File(String),
    Stdout,
    Stderr,
}

impl std::fmt::Display for LogStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogStream::File(name) => f.write_str(name),
            LogStream::Stdout => f.write_str("(stdout)"),
            LogStream::Stderr => f.write_str("(stderr)"),
        }
    }
}

/// Consecutive lines of one source.
///
/// Each entry of `lines` is a whole line or a piece of one: a line longer than
/// [`MAX_LINE_BYTES`] is cut into pieces, which keep the line's number and are told apart
/// by their part (from 0) and a continuation flag ([`Pieces`]). So `first_line` and the
/// line numbers that follow are always the lines' numbers in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    pub source: LogSource,
    /// The number of the first entry's line (from 1 within the source); the others
    /// follow, an entry that continues a line keeping its number.
    pub first_line: u64,
    /// When the agent read them.
    pub time: Timestamp,
    /// Without their line ends: whole lines, or pieces of long ones.
    pub lines: Vec<String>,
    /// Which entries are pieces of a line (empty for whole lines).
    pub pieces: Pieces,
}

/// The pieces of long lines in a [`LogChunk`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pieces {
    /// The part of its line the first entry is (0: it starts its line; more when it goes
    /// on with a line whose first pieces came in an earlier chunk).
    pub first_part: u32,
    /// The indexes, ascending, of the entries after which their line goes on: in the next
    /// entry, or in the next chunk of the source when the entry is the last.
    pub continued: Vec<u32>,
}

impl Pieces {
    /// Whole lines only.
    pub fn is_whole(&self) -> bool {
        self.first_part == 0 && self.continued.is_empty()
    }

    /// Whether well formed for `entries` entries: indexes ascending and in range.
    pub fn valid_for(&self, entries: usize) -> bool {
        self.continued.windows(2).all(|w| w[0] < w[1])
            && self
                .continued
                .last()
                .is_none_or(|&i| (i as usize) < entries)
    }

    /// Where each of `entries` entries stands, the first being of line `first_line`.
    pub fn positions(&self, first_line: u64, entries: usize) -> impl Iterator<Item = LinePos> + '_ {
        let mut line = first_line;
        let mut part = self.first_part;
        (0..entries).map(move |i| {
            let continued = self.continues(i);
            let pos = LinePos {
                line,
                part,
                continued,
            };
            if continued {
                part = part.saturating_add(1);
            } else {
                line = line.saturating_add(1);
                part = 0;
            }
            pos
        })
    }

    fn continues(&self, index: usize) -> bool {
        u32::try_from(index).is_ok_and(|i| self.continued.binary_search(&i).is_ok())
    }
}

/// Where an entry of a chunk stands in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinePos {
    /// The line's number in the file.
    pub line: u64,
    /// Which piece of the line (0: the first, or the whole line).
    pub part: u32,
    /// More of the line follows.
    pub continued: bool,
}

impl LogChunk {
    /// A chunk of whole lines.
    pub fn whole(source: LogSource, first_line: u64, time: Timestamp, lines: Vec<String>) -> Self {
        Self {
            source,
            first_line,
            time,
            lines,
            pieces: Pieces::default(),
        }
    }

    /// The runs of line numbers it covers (a line cut across chunks counts in each).
    pub fn span(&self) -> LogSpan {
        let lines = match self.lines.len() {
            0 => 0,
            n => self.position(n - 1).line - self.first_line + 1,
        };
        LogSpan {
            source: self.source.clone(),
            first_line: self.first_line,
            lines,
        }
    }

    /// Where each entry stands: its line's number, its part and whether more follows.
    pub fn positions(&self) -> impl Iterator<Item = LinePos> + '_ {
        self.pieces.positions(self.first_line, self.lines.len())
    }

    /// Where entry `index` stands (see [`LogChunk::positions`]).
    pub fn position(&self, index: usize) -> LinePos {
        self.positions().nth(index).unwrap_or(LinePos {
            line: self.first_line,
            part: self.pieces.first_part,
            continued: false,
        })
    }

    /// The line and part an entry appended after the last would have.
    pub fn end(&self) -> (u64, u32) {
        match self.lines.len() {
            0 => (self.first_line, self.pieces.first_part),
            n => {
                let last = self.position(n - 1);
                if last.continued {
                    (last.line, last.part.saturating_add(1))
                } else {
                    (last.line.saturating_add(1), 0)
                }
            }
        }
    }

    /// Appends an entry (`continues`: more of its line follows).
    pub fn push(&mut self, text: String, continues: bool) {
        if continues {
            self.pieces
                .continued
                .push(u32::try_from(self.lines.len()).unwrap_or(u32::MAX));
        }
        self.lines.push(text);
    }

    /// Splits off the entries from `at` on, as a chunk of their own that goes on where
    /// this one stops.
    pub fn split_off(&mut self, at: usize) -> LogChunk {
        let at = at.min(self.lines.len());
        let start = if at == 0 {
            (self.first_line, self.pieces.first_part)
        } else {
            let prev = self.position(at - 1);
            if prev.continued {
                (prev.line, prev.part.saturating_add(1))
            } else {
                (prev.line.saturating_add(1), 0)
            }
        };
        let cut = u32::try_from(at).unwrap_or(u32::MAX);
        let split = self.pieces.continued.partition_point(|&i| i < cut);
        let tail_continued = self.pieces.continued.split_off(split);
        LogChunk {
            source: self.source.clone(),
            first_line: start.0,
            time: self.time,
            lines: self.lines.split_off(at),
            pieces: Pieces {
                first_part: start.1,
                continued: tail_continued.into_iter().map(|i| i - cut).collect(),
            },
        }
    }

    /// Bytes of text in the chunk.
    pub fn text_bytes(&self) -> usize {
        self.lines.iter().map(|l| l.len() + 1).sum()
    }
}

/// A run of line numbers of one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSpan {
    pub source: LogSource,
    pub first_line: u64,
    pub lines: u64,
}
