//! The benchmark scenarios behind `skerry-bench`, one module each.
//!
//! Every scenario measures its figures and the baseline it ran beside, in the same run and
//! on the same machine, and prints both with their ratio and the target through
//! [`report::Report`]. Speed and memory are measured here, never asserted in timed tests.
//!
//! # Layout
//! - [`report`]: [`report::Report`], the figures of one scenario: each with its baseline,
//!   ratio and target, printed as a table (and as JSON with `--json`).

pub mod report;
