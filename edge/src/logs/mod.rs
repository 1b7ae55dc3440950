//! Collecting the logs of the components a node runs.
//!
//! - [`tail`]: follows every file of a component's `log_dir` (rotations and truncations
//!   included), with a position that is saved in the journal with the lines it read.

pub mod tail;
