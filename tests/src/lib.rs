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
//! - [`binaries`]: [`bin`], the path to a workspace binary (`skerry`, `skerry-edge`) in the
//!   running test's target directory and profile, built once per test process.
//! - [`cloud`]: [`Cloud`], a `skerry serve` child process on free ports with its own data
//!   directory; `kill9`, `restart`, logs printed when a test fails.
//! - [`cli`](mod@cli): [`cli()`], one `skerry --cloud URL ...` command to its end (exit
//!   code, stdout, stderr); [`CliStream`], a long-lived one (`events --follow`) read line by
//!   line.
//! - [`http`]: [`Api`], a blocking REST client for plain `#[test]`s, and the `/healthz`
//!   probe.
//! - [`node`]: [`TestNode`], an enrollment client with a real key pair and PKCS#10 CSR that
//!   checks the answer as an agent must (CA hash from the token, CN, signature).
//! - [`fixtures`]: app manifests, a valid one and one refused per rule, with the field each
//!   refusal must name.
//! - [`wait`]: waiting for a condition with a deadline (never a fixed sleep).
//! - [`error`]: the harness's [`Error`].
//!
//! # Tests (`tests/tests/`)
//! - `cli_commands`: every operator command walked like a new user, exit codes, `--follow`.
//! - `enrollment`: one-time and expiring tokens, CSR checks, the pinned CA, the CA key's mode.
//! - `manifest_refusals`: each refusal rule through the CLI and the API, nothing recorded.
//! - `crash_durability`: 64 clients, `kill -9` three times; every 2xx survives, no gaps.
//! - `harness`: the harness itself (binaries, restart after `kill -9`).
//! - `known_bugs`: ignored tests that reproduce open bugs; run with `-- --ignored`.

pub mod agent;
pub mod binaries;
pub mod cli;
pub mod cloud;
pub mod error;
pub mod fixtures;
pub mod http;
pub mod images;
pub mod mqtt;
pub mod node;
pub mod wait;

pub use binaries::{bin, try_bin};
pub use cli::{CliOutput, CliStream, cli, cli_at, try_cli_at};
pub use cloud::{Cloud, free_port};
pub use error::Error;
pub use http::{Api, HttpResponse, http_client, init_crypto};
pub use node::{Enrolled, TestNode};
pub use wait::{wait_for, wait_until};
