//! Skerry's test harness: real processes on free ports, each in its own temporary directory
//! and stopped on `Drop`, driven the way operators and agents drive them.
//!
//! Integration tests in `tests/tests/` use it against the real `skerry` binary:
//! ```no_run
//! use skerry_tests::{Cloud, cli};
//!
//! let cloud = Cloud::start().unwrap();
//! let out = cli(&cloud, &["env", "create", "prod"]);
//! assert_eq!(out.code, 0, "{out}");
//! ```
//!
//! # Layout
//! - [`agent`]: [`agent::Agent`], a `skerry-edge run` child process enrolled with a cloud
//!   through `skerry node token`, in its own temporary directory, with a built-in or file
//!   firmware profile; `kill9`, `restart`, its peak RSS, its log kept across restarts; dropping it removes every container, network and volume
//!   labelled with its node id.
//! - [`bench`]: the scenarios of the `skerry-bench` program (`src/bin/skerry-bench.rs`),
//!   each printing its figures beside a baseline measured in the same run.
//! - [`binaries`]: [`bin`], the path to a workspace binary (`skerry`, `skerry-edge`) in the
//!   running test's target directory and profile, built once per test process.
//! - [`cloud`]: [`Cloud`], a `skerry serve` child process on free ports (API and MQTT) with
//!   its own data directory and no local node; `kill9`, `restart`, logs printed when a test
//!   fails.
//! - [`cli`](mod@cli): [`cli()`], one `skerry --cloud URL ...` command to its end (exit
//!   code, stdout, stderr); [`CliStream`], a long-lived one (`events --follow`) read line by
//!   line; [`cli::publish`], [`cli::deploy`] and [`agent::publish_and_deploy`], an app
//!   published from a manifest and deployed on a node.
//! - [`http`]: [`Api`], a blocking REST client for plain `#[test]`s, and the `/healthz`
//!   probe.
//! - [`node`]: [`TestNode`], an enrollment client with a real key pair and PKCS#10 CSR that
//!   checks the answer as an agent must (CA hash from the token, CN, signature).
//! - [`fixtures`]: app manifests, a valid one and one refused per rule, with the field each
//!   refusal must name; [`fixtures::host_profile_with`], the host profile with one line
//!   changed.
//! - [`images`]: [`images::busybox_image`], a container image built `FROM scratch` with
//!   the host's static busybox (no registry needed); [`images::unique`] names;
//!   [`images::DockerCleanup`], which removes what a node left on the engine.
//! - [`mqtt`]: Debian's `mosquitto_sub` and `mosquitto_pub` as third-party MQTT clients of
//!   the cloud's endpoint: client keys and CSRs, PEM files, runs with a deadline.
//! - [`proxy`]: [`proxy::Proxy`], a TCP proxy between an agent and the cloud's MQTT port
//!   that can cut the link (drop every connection, refuse new ones) and restore it.
//! - [`served`]: [`served::Served`], a `skerry serve` child process with the test's own
//!   arguments (another listen address, TLS, `--insecure-http`, a keys directory prepared
//!   beforehand); its logs, its exit, the admin token it wrote.
//! - [`smallfs`]: [`smallfs::SmallFs`], a small tmpfs mounted over a directory (root only)
//!   and filled to the last byte on demand; [`smallfs::copy_dir`], to move a data
//!   directory onto it.
//! - [`procfs`]: a process's resident memory (now and peak) from `/proc`.
//! - [`sim`]: the fleet simulator: N real agent loops in this process
//!   (`skerry_edge::agent::run_with`) with in-memory journals and a simulated runtime, over
//!   the real MQTT endpoint with TLS; enrollment and connection timed apart, the
//!   open-files limit raised and reported when it stops the fleet.
//! - [`doctest`]: the docs' shell examples: blocks and their markers (`<!-- doc-test -->`,
//!   `<!-- not-run: REASON -->`), commands and the output shown, masks for ids, times,
//!   hashes and ports, values carried from one command to the next.
//! - [`wait`]: waiting for a condition with a deadline (never a fixed sleep).
//! - [`error`]: the harness's [`Error`].
//! - [`fault`]: what the fault tests look at: a node's containers with ids and states,
//!   the events of an agent's journal and of the cloud's log for a node, a one-service app,
//!   an agent pointed at another MQTT endpoint.
//!
//! # Tests (`tests/tests/`)
//! - `cli_commands`: every operator command walked like a new user, exit codes, `--follow`.
//! - `api_edges`: edges of the API and the CLI: names that read as ids, error shapes,
//!   far-off times, routes of later releases.
//! - `enrollment`: one-time and expiring tokens, CSR checks, the pinned CA, the CA key's mode.
//! - `manifest_refusals`: each refusal rule through the CLI and the API, nothing recorded.
//! - `crash_durability`: 64 clients, `kill -9` three times; every 2xx survives, no gaps.
//! - `harness`: the harness itself (binaries, restart after `kill -9`).
//! - `agent_e2e`: a real cloud, agent and containers: deploy, `kill -9` of the agent (one
//!   container per replica), rebuild from the journal with the cloud stopped, undeploy
//!   keeping named storage, catch-up of 1,000 events, `exec` components restarted.
//! - `runtime_recovery`: real agents on the real engine: two agents on one engine get
//!   different node ports and a taken fixed port is named; a missing image is pulled under
//!   the backoff (at most 8 pulls in 60 s); a container stopped with `docker stop` (also
//!   while the agent was down) runs again; an undeploy takes one grace period.
//! - `docker_runtime`: the Docker runtime against the real engine: networks from the subnet
//!   pool, containers mapped from specs, adoption, named storage, errors.
//! - `docker_late`: a Docker socket made after the agent started: the waiting replica runs.
//! - `process_runtime`: the process runtime on real processes: environment and storage,
//!   restart policies with backoff, health checks, adoption after the old runtime is gone,
//!   output files, limits.
//! - `logs_sources`: where log lines come from, with real processes: `exec` replicas that
//!   share a `log_dir` ship each file once under the replica that wrote it, an `exec`
//!   component without one ships `(stdout)` and `(stderr)`, subdirectories are read and
//!   files past the 1,024-file limit are reported waiting (`skerry logs`, `skerry-edge
//!   status`), and a 5 MB line comes in pieces that keep its number.
//! - `restarts_kept`: a crash-looping `exec` component: its restarts in `skerry-edge
//!   status`, and its backoff and last exit kept across a `kill -9` of the agent.
//! - `logs_e2e`: logs and status through an outage (two files, one rotated, every line
//!   once), `kill -9` of the agent while it ships, drops for a small quota reported exactly,
//!   `skerry node logs` from a connected agent and the refusal when it is not.
//! - `fleet_sim`: the fleet simulator end to end: 50 simulated agents over the real MQTT
//!   endpoint; one deploy reaches every journal and runtime, the cloud reports all
//!   `Running` at lag 0, the undeploy stops every replica.
//! - `faults_agent`: `kill -9` of the agent at random points of deploy/undeploy cycles:
//!   the journal opens and holds every acked event, one container per replica at the end.
//! - `faults_link`: the agent's link cut through a proxy while events are recorded: it
//!   converges and its state and journal are the cloud's.
//! - `faults_cloud`: the cloud killed mid-deploy to three agents, and under load with
//!   deploys in flight: every 2xx in the log, the fleet converges.
//! - `faults_disk`: the agent's data dir on a small tmpfs filled up: it stays up and
//!   catches up once space is freed; the journal is sound (root only, else NOT RUN).
//! - `faults_journal`: a truncated, then a bit-flipped journal: refused at open, set aside,
//!   rebuilt from the cloud's snapshot under a new epoch; the containers keep their ids.
//! - `docs_examples`: every example block of README.md and docs/cli.md run against a real
//!   cloud with its local node and agents, its output compared with the page's.
//! - `mqtt_endpoint`: the cloud's MQTT endpoint against mosquitto clients: certificates
//!   required, each node to its own topics, refusal by the sync layer, shutdown.
//! - `cli_exit_codes`: every exit status of `skerry` and `skerry-edge` that can occur,
//!   driven for real (bad flags, a closed port, a cloud's TLS port, refused tokens).
//! - `enroll_token_sources`: agents enrolled with `SKERRY_TOKEN` and `--token-file`; the
//!   token is not in `/proc/PID/cmdline`, the data directory or the log.
//! - `status_stale`: an agent stopped until its node is `Abnormal`: its replicas are shown
//!   stale with the time of their last report, across a cloud restart.
//! - `logs_escapes`: an app's control characters reach `skerry logs` escaped in tables and
//!   exact in `-o json`.
//! - `command_bounds`: every count and size a manifest or command carries, refused at its
//!   bound with the field named (replicas, entries, labels, `--set`, versions), and the
//!   codes of an unknown app and an unknown version.
//! - `poisoned_log`: a log that holds events no build of today accepts (replicas
//!   4294967295): the cloud starts, serves, marks them refused and verifies the chain.
//! - `api_hostile`: what a web page or a hostile client sends: foreign origins, bodies that
//!   are not JSON, 2,000 half-sent heads, the connection bound, hyper's own errors, all
//!   answered in the error shape.
//! - `api_tls`: the API beyond loopback refuses to start without TLS or `--insecure-http`;
//!   https with `--tls-name` (curl `--cacert`, the CLI `--ca`), plain http to it fails, a
//!   handshake that never comes is closed; a certificate of one's own; the local node
//!   enrolls over https.
//! - `event_streams`: event reads page by page from the log: the `limit` maxima of event
//!   and log reads, the stream caps (429), and 300 follows of a large backlog with the
//!   cloud's RSS bounded.
//! - `log_streams`: a read of 10,000 log lines sent in pages answers as small pages do, and
//!   a follow gives the same lines in order.
//! - `cli_hostile`: the CLI's bounds and foreign answers against a real cloud and python's
//!   http.server (a manifest too large, `--since` too far, a `--cloud` that is not Skerry,
//!   usage errors in JSON).
//! - `api_fuzz`: a property test over the API's bodies, query strings and paths: no 5xx,
//!   every error in the shape, the cloud's peak RSS bounded.

pub mod agent;
pub mod bench;
pub mod binaries;
pub mod cli;
pub mod cloud;
pub mod doctest;
pub mod error;
pub mod fault;
pub mod fixtures;
pub mod http;
pub mod images;
pub mod mqtt;
pub mod node;
pub mod procfs;
pub mod proxy;
pub mod served;
pub mod sim;
pub mod smallfs;
pub mod wait;

pub use binaries::{bin, try_bin};
pub use cli::{CliOutput, CliStream, cli, cli_as, cli_at, try_cli_at, try_cli_with};
pub use cloud::{Cloud, free_port};
pub use error::Error;
pub use http::{Api, HttpResponse, http_client, init_crypto};
pub use node::{Enrolled, TestNode};
pub use wait::{wait_for, wait_until};
