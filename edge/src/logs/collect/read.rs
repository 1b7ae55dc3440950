//! The reading of one round: containers' own output first (through the Docker runtime's
//! [`OutputReader`](crate::runtime::docker::OutputReader)), then the directories on the
//! blocking pool, within [`SOURCE_ROUND_BYTES`] per source and [`ROUND_BYTES`] in all;
//! then the sources gone for longer than [`GRACE`] are dropped with their cursors.

use skerry_shared::clock::Timestamp;
use skerry_shared::outbox::{LogChunk, LogSource, LogStream};
use skerry_shared::planner::ReplicaKey;
use tokio::time::Instant;

use super::super::tail::DirTailer;
use super::{Collector, GRACE, ROUND_BYTES, Reader, Round, SOURCE_ROUND_BYTES};
use crate::journal::JournalError;
use crate::runtime::docker::OutputCursor;

impl Collector {
    /// The reading of one round: what is new in every source, the sources' new cursors
    /// (`None`: a source dropped after its grace), and whether a source had more.
    pub(super) async fn read_round(&mut self) -> Result<Round, JournalError> {
        let now = Instant::now();
        let mut chunks: Vec<LogChunk> = Vec::new();
        let mut cursors: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        let mut budget = ROUND_BYTES;
        let mut more = false;
        let time = Timestamp::now();

        // Container output first (async reads from the engine).
        for (id, source) in &mut self.sources {
            let Reader::Output { container, cursor } = &source.reader else {
                continue;
            };
            let Some(docker) = &self.docker else { continue };
            if budget == 0 {
                more = true;
                break;
            }
            match docker
                .read(container, cursor, SOURCE_ROUND_BYTES.min(budget))
                .await
            {
                Ok((lines, next)) => {
                    if next != *cursor {
                        let n: usize = lines
                            .iter()
                            .map(|l| l.lines.iter().map(|t| t.len() + 1).sum::<usize>())
                            .sum();
                        budget = budget.saturating_sub(n);
                        more |= n >= SOURCE_ROUND_BYTES;
                        for l in lines {
                            chunks.push(LogChunk {
                                source: source_of(&source.key, l.stream),
                                first_line: l.first_line,
                                time,
                                lines: l.lines,
                                pieces: l.pieces,
                            });
                        }
                        cursors.push((id.clone(), postcard::to_stdvec(&next).ok()));
                    }
                }
                Err(e) => {
                    tracing::debug!(%container, error = %e, "cannot read the container's output")
                }
            }
        }

        // Then the directories, on the blocking pool (file reads).
        let mut dirs: Vec<(String, (ReplicaKey, bool), Box<DirTailer>)> = Vec::new();
        for (id, source) in &mut self.sources {
            if let Reader::Dir(_) = &source.reader {
                let Reader::Dir(tailer) = std::mem::replace(
                    &mut source.reader,
                    Reader::Output {
                        container: String::new(),
                        cursor: OutputCursor::new(),
                    },
                ) else {
                    continue;
                };
                dirs.push((
                    id.clone(),
                    (source.key.clone(), source.process_output),
                    tailer,
                ));
            }
        }
        let read = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut budget = budget;
            let mut more = false;
            for (id, key, mut tailer) in dirs {
                let got = if budget == 0 {
                    more = true;
                    None
                } else {
                    match tailer.poll(SOURCE_ROUND_BYTES.min(budget)) {
                        Ok(r) => Some(r),
                        Err(e) => {
                            tracing::warn!(dir = %tailer.dir().display(), error = %e, "cannot read the log directory");
                            None
                        }
                    }
                };
                if let Some(r) = &got {
                    let n: usize = r
                        .files
                        .iter()
                        .map(|f| f.lines.iter().map(|t| t.len() + 1).sum::<usize>())
                        .sum();
                    budget = budget.saturating_sub(n);
                    more |= r.more;
                }
                out.push((id, key, tailer, got));
            }
            (out, more)
        })
        .await
        .map_err(|e| JournalError::Storage {
            journal: "log collector".into(),
            reason: e.to_string(),
        })?;
        let (dirs, dirs_more) = read;
        more |= dirs_more;
        let mut polled: Vec<(String, Box<DirTailer>, Option<u64>)> = Vec::new();
        for (id, (key, process_output), tailer, got) in dirs {
            let waiting = got.as_ref().map(|r| r.waiting);
            if let Some(r) = got {
                if !r.files.is_empty() {
                    for f in r.files {
                        let stream = if process_output {
                            process_stream(f.stream)
                        } else {
                            LogStream::File(f.stream)
                        };
                        chunks.push(LogChunk {
                            source: source_of(&key, stream),
                            first_line: f.first_line,
                            time,
                            lines: f.lines,
                            pieces: f.pieces,
                        });
                    }
                }
                if self.committed.get(&id) != Some(&r.state) {
                    cursors.push((id.clone(), Some(r.state)));
                }
            }
            polled.push((id, tailer, waiting));
        }
        for (id, tailer, waiting) in polled {
            if let Some(source) = self.sources.get_mut(&id) {
                source.reader = Reader::Dir(tailer);
                if let Some(w) = waiting {
                    source.waiting = w;
                }
            }
        }

        // Sources gone for longer than the grace: dropped with their cursors.
        let expired: Vec<String> = self
            .sources
            .iter()
            .filter(|(_, s)| s.gone_since.is_some_and(|t| now.duration_since(t) >= GRACE))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.sources.remove(id);
            if self.committed.contains_key(id) {
                cursors.retain(|(k, _)| k != id);
                cursors.push((id.clone(), None));
            }
        }
        Ok(Round {
            chunks,
            cursors,
            more,
        })
    }
}

/// The stream of a line read from a process's own output file.
fn process_stream(file: String) -> LogStream {
    if file.ends_with(".stdout.log") {
        LogStream::Stdout
    } else if file.ends_with(".stderr.log") {
        LogStream::Stderr
    } else {
        LogStream::File(file)
    }
}

fn source_of(key: &ReplicaKey, stream: LogStream) -> LogSource {
    LogSource {
        instance: key.instance.clone(),
        component: key.component.clone(),
        replica: key.replica,
        stream,
    }
}
