//! The Skerry agent.
//!
//! The agent enrolls once, then keeps a link to the cloud whenever it can. It commits
//! every event addressed to its node to a local journal before acknowledging it, folds the
//! events into the node's desired state with the shared reducer, and drives its runtimes
//! toward that state with the shared planner, whether or not the cloud is reachable.
//!
//! # Layout
//! - [`backoff`]: delays of 1 s doubling to 30 s, for retrying a failed journal commit.
//! - [`clock`]: the agent's clock (the host's, offset by `SKERRY_CLOCK_OFFSET` for tests).
//! - [`config`]: the agent's configuration (`skerry-edge run` flags).
//! - [`disk`]: the disk budget (the profile's `disk`): what the agent stores, and log
//!   batches giving way first when it passes the budget.
//! - [`identity`]: the node's identity on disk: key (0600), certificate, CA, node id.
//! - [`enroll`]: first-run enrollment: key pair, CSR, CA check against the token
//!   (`enroll::request` without saving, for the simulator).
//! - [`journal`]: the [`journal::Journal`] seam: redb on a node, in memory for the
//!   simulator. Events, desired state and the agent's memos, committed before each ack;
//!   [`journal::blocking::AsyncJournal`] runs its calls on the blocking pool.
//! - [`sync`]: the agent's side of the sync protocol (sans-IO): down frames in, journal
//!   commits and up frames out.
//! - [`link`]: the [`link::Link`] seam to the cloud, with [`link::mqtt`] (rumqttc over TLS
//!   with the node's certificate, reconnecting with backoff) behind it.
//! - [`logs`]: log collection: [`logs::tail`] follows the files of a component's `log_dir`.
//! - [`runtime`]: the [`runtime::Runtime`] seam, with [`runtime::docker`] (bollard) and
//!   [`runtime::process`] (supervised native processes).
//! - [`reconciler`]: observes the runtimes, plans with the shared planner, acts, and
//!   reports replica states.
//! - [`jobs`]: when a cron job's run is due and what its concurrency says; the reconciler
//!   runs them.
//! - [`outbox`]: the outbox sender: queued reports to the cloud, control before logs, logs
//!   within the profile's rate; acknowledged entries are deleted from the journal.
//! - [`logs`]: log collection from `log_dir`s and containers' output into the outbox.
//! - [`runlog`]: the agent's own log in a rotating file, read for `skerry node logs`.
//! - [`agent`]: `run(config, shutdown)`, the entry point that `skerry-edge run` and the
//!   cloud's local node both call, and `run_with(config, parts, shutdown)`, the same on a
//!   given identity, journal, runtimes and link (the fleet simulator's entry): a few tasks
//!   with typed channels (the commit path, the outbox sender, the reconcile scheduler, the
//!   log collector).

pub mod agent;
pub mod backoff;
pub mod clock;
pub mod config;
pub mod disk;
pub mod enroll;
pub mod identity;
pub mod jobs;
pub mod journal;
pub mod link;
pub mod logs;
pub mod outbox;
pub mod reconciler;
pub mod runlog;
pub mod runtime;
pub mod sync;
