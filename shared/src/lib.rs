//! The language that the Skerry cloud and edge both speak.
//!
//! Everything here is pure: no tokio, no sockets, no files. The cloud and the edge
//! meet only through this crate.
//!
//! # Layout
//! - [`access`]: API roles and the API token's format.
//! - [`ids`]: names, node ids, token ids and labels, with their validation rules.
//! - [`job`]: a job's runs, as agents report them.
//! - [`clock`]: timestamps (unix milliseconds) and the command line's time syntax.
//! - [`hash`]: the SHA-256 digest used by the hash chain and spec hashes.
//! - [`quantity`]: memory, CPU and duration quantities (`64Mi`, `500m`, `5s`).
//! - [`manifest`]: the app manifest model, its YAML parser and its validation rules.
//! - [`cron`]: 5- or 6-field Unix cron translated for the `cron` crate, errors by field.
//! - [`profile`]: the firmware-profile schema (a class of device and the agent's tuning).
//! - [`instance`]: what a deploy records: the instance's spec, its nodes and targeting.
//! - [`rollout`]: rollouts' policy, batches and outcomes, as the events record them.
//! - [`event`]: the events, the command log's entry format and the hash chain.
//! - [`enroll`]: the enrollment request and answer, shared by cloud and agent.
//! - [`frame`]: postcard wire frames, each starting with a format version.
//! - [`outbox`]: what an agent queues to say (replica states, log batches) and how it travels.
//! - [`reducer`]: events to a node's desired state, idempotent by `node_seq`.
//! - [`report`]: replica states as agents report them.
//! - [`secret`]: secrets' crypto formats (sealed at rest, sealed for a node) and bounds.
//! - [`planner`]: desired and actual state to ordered actions.
//! - `fuzzing` (with the `fuzzing` feature): one fuzz target per decoder of outside bytes,
//!   shared by the stable fuzz test and the cargo-fuzz targets under `fuzz/`.

pub mod access;
pub mod clock;
pub mod cron;
pub mod enroll;
pub mod event;
pub mod frame;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod hash;
pub mod ids;
pub mod instance;
pub mod job;
pub mod manifest;
pub mod outbox;
pub mod planner;
pub mod profile;
pub mod quantity;
pub mod reducer;
pub mod report;
pub mod rollout;
pub mod secret;
