//! The benchmark scenarios behind `skerry-bench`, one module each.
//!
//! Every scenario measures its figures and the baseline it ran beside, in the same run and
//! on the same machine, and prints both with their ratio and the target through
//! [`report::Report`]. Speed and memory are measured here, never asserted in timed tests.
//!
//! # Layout
//! - [`report`]: [`report::Report`], the figures of one scenario: each with its baseline,
//!   ratio and target, printed as a table (and as JSON with `--json`).
//! - [`stage`]: a real cloud and agent with the Docker runtime, deploys timed from outside.
//! - [`load`]: concurrent HTTP clients, until a time or a count.
//! - [`append`]: durable commands per second with 64 clients, beside raw redb commits.
//! - [`catchup`]: a node that missed 100,000 events, by snapshot and by full replay,
//!   beside a raw TCP transfer.
//! - [`wire`]: bytes of a 5-component deploy on the link, beside the same event as JSON.
//! - [`deploy`]: a 5-service app, API call until running, beside `docker-compose up -d`.
//! - [`fanout`]: one deploy to 1,000 and 10,000 simulated nodes until acknowledged and
//!   `Running`, beside a raw MQTT round trip to as many clients.
//! - [`rawmqtt`]: that baseline: a bare MQTT server with the endpoint's codec and TLS, in a
//!   child process, and N rumqttc clients.
//! - [`footprint`]: the agent's RSS idle and with 3 containers, binary sizes, beside the
//!   Docker engine's RSS.
//! - [`logs`]: lines from `log_dir` files until queryable in the cloud, beside `cat`.
//! - [`rollout`]: an upgrade of 1,000 simulated nodes in batches, each batch's duration
//!   and its overhead over the settle time, beside a plain deploy to the same nodes.
//! - [`siege`]: 1,000 slow clients and 300 event streams while a deploy runs to 100
//!   simulated nodes, beside the same deploy and the cloud's RSS at rest.

pub mod append;
pub mod catchup;
pub mod deploy;
pub mod fanout;
pub mod footprint;
pub mod load;
pub mod logs;
pub mod rawmqtt;
pub mod report;
pub mod rollout;
pub mod siege;
pub mod stage;
pub mod wire;
