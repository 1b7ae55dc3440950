//! Log collection: what the apps write to their `log_dir`s, and containers' own output,
//! queued in the outbox.
//!
//! # Layout
//! - [`tail`]: [`tail::DirTailer`], which follows every file of one directory through
//!   rotation and truncation, with a position that is saved in the journal with the lines
//!   it read.
//! - [`filter`]: [`filter::NameFilter`], which files of a directory that several sources
//!   share (an `exec` component's `log_dir`) each source reads.
//! - containers' own stdout and stderr are read through the Docker runtime's one engine
//!   ([`crate::runtime::docker::output`]), not a client of the collector's own.
//! - [`collect`]: [`collect::Collector`], which reads every source of the desired state
//!   and queues the lines with the sources' cursors in one journal transaction.

pub mod collect;
pub mod filter;
pub mod tail;
