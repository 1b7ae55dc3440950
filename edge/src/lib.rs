//! The Skerry agent.
//!
//! # Layout
//! For now the crate builds and holds the agent's command line; the journal, the link,
//! the reconciler and the runtimes arrive with the agent itself.
