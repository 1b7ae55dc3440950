//! The Skerry cloud: the server (`skerry serve`) and the operator's client, one binary.
//!
//! # Layout
//! - [`config`]: `skerry serve`'s configuration (TOML, `SKERRY_*` overrides, flags).
//! - [`log`]: the [`log::EventLog`] seam (what a backend must provide), its embedded
//!   backend, [`log::RedbLog`], and the one place a backend is chosen ([`log::open`]).
//! - [`projections`]: read models (environments, nodes, apps, instances, tokens) folded
//!   from the log, and rebuilt from it at start.
//! - [`command`]: command handlers: a command and the projections in, events or a
//!   refusal (field and reason) out. No I/O.
//! - [`engine`]: the single writer: runs handlers, seals events into the hash chain,
//!   appends them durably with group commit, then updates projections and notifies
//!   subscribers.
//! - [`pki`]: the cloud's CA (rcgen), enrollment tokens and node certificates.
//! - [`secrets`]: the cloud's secrets key (`secrets.key`) and the sealing done with it.
//! - [`mqtt`]: the embedded MQTT 3.1.1 endpoint for agents: TLS with client certificates,
//!   every packet authorized by the node id in the certificate.
//! - [`sync`]: the cloud's side of the sync protocol: per-node sessions (catch-up by events
//!   or snapshot, live events, acks, heartbeats, reports) and each node's live state, behind
//!   the transport seam ([`sync::Sessions`], [`sync::Connection`]) that the MQTT endpoint
//!   (and later a NATS link) serves.
//! - [`controllers`]: work the cloud does on its own from the state it watches (a core
//!   without I/O, a driver submitting commands as `Actor::Cloud`): node liveness.
//! - [`reports`]: the report store (`reports.redb`): what agents send through their
//!   outboxes (replica statuses, log lines, lines dropped for the log quota), stored once per
//!   (node, epoch, seq) with group commit, with log retention, and read by `/api/v1/logs`.
//! - [`api`]: the REST API (axum) and its JSON bodies ([`api::dto`]); who may call what
//!   ([`api::auth`]).
//! - [`admin_token`]: the first API token, made and printed by `skerry serve`.
//! - [`local_node`]: the agent `skerry serve` runs in-process in the environment `local`.
//! - [`serve`]: `skerry serve`'s composition root: opens everything and runs it until
//!   shutdown.
//! - [`cli`]: the operator's command line, a client of the REST API.

pub mod admin_token;
pub mod api;
pub mod cli;
pub mod command;
pub mod config;
pub mod controllers;
pub mod engine;
pub mod local_node;
pub mod log;
pub mod mqtt;
pub mod pki;
pub mod projections;
pub mod reports;
pub mod secrets;
pub mod serve;
pub mod sync;
