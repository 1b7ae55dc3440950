//! Controllers: work the cloud does on its own, from the state it watches.
//!
//! A controller watches state (the projections, the hub's live view of the nodes, the
//! clock) and, when what it sees calls for it, submits commands to the engine as
//! [`Actor::Cloud`](skerry_shared::event::Actor::Cloud), exactly as the API submits an
//! operator's: the command handlers check them against the projections, and the events
//! they cause go through the log like any other. A controller never writes state itself.
//!
//! Each controller has two parts:
//! - a **core** that does no I/O: given the state it watches and the time, it decides
//!   (which commands, if any). It is a plain function or state machine, tested without a
//!   runtime, a log or a clock;
//! - a **driver**: the task that gathers that state, calls the core, submits what it
//!   decided through the [`Engine`](crate::engine::Engine), and waits (a tick, a wake-up,
//!   shutdown). `skerry serve` spawns each driver and waits for it at shutdown, so no
//!   command is submitted after the engine closes.
//!
//! Controllers depend on the engine, the commands and the sync layer's public view
//! ([`crate::sync::Hub`]); nothing below them depends on a controller.
//!
//! # Layout
//! - [`liveness`]: node status from heartbeats, `Normal` or `Abnormal` (the Abnormal
//!   marking).
//! - [`rollouts`]: each running rollout moved on batch by batch, from what the nodes
//!   report (health gates, timeouts, rollbacks).
//! - [`secrets`]: each secret's latest version delivered to every node in its scope.
//! - [`selectors`]: instances deployed without `--node` follow their selector: nodes
//!   labelled, joining or enrolling get them, nodes that stop matching lose them.

pub mod liveness;
pub mod rollouts;
pub mod secrets;
pub mod selectors;
