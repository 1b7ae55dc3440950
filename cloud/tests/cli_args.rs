//! Parsing tests for the `skerry` command line: the arguments with structure (`--node a=3`,
//! `--set db.TZ=UTC`, `K-`, `APP@VERSION`), global options after the subcommand, and the
//! usage errors that must exit 2. Nothing here talks to a cloud.

use clap::Parser;
use clap::error::ErrorKind;
use skerry_cloud::cli::app::AppCommand;
use skerry_cloud::cli::events::{EventsArgs, EventsCommand};
use skerry_cloud::cli::node::NodeCommand;
use skerry_cloud::cli::values::{AppRef, LabelChange};
use skerry_cloud::cli::{Cli, Command, OutputFormat};

fn parse(args: &[&str]) -> Cli {
    let mut argv = vec!["skerry"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => panic!("{args:?} did not parse: {e}"),
    }
}

fn refused(args: &[&str]) -> clap::Error {
    let mut argv = vec!["skerry"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv) {
        Ok(cli) => panic!("{args:?} parsed: {:?}", cli.command),
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "{e}");
            e
        }
    }
}

#[test]
fn deploy_takes_weights_selectors_and_overrides() {
    let cli = parse(&[
        "deploy",
        "weather@1.0.0",
        "--env",
        "prod",
        "--name",
        "web",
        "--node",
        "a=3",
        "--node",
        "b",
        "--selector",
        "zone=eu",
        "--set",
        "db.TZ=UTC",
        "--set",
        "db.URL=x=y",
        "--dry-run",
    ]);
    let Command::Deploy(d) = cli.command else {
        panic!("not deploy: {:?}", cli.command)
    };
    assert_eq!(
        (d.app.app.as_str(), d.app.version.as_str()),
        ("weather", "1.0.0")
    );
    assert_eq!((d.env.as_str(), d.name.as_str()), ("prod", "web"));
    let nodes: Vec<(&str, Option<u32>)> = d
        .nodes
        .iter()
        .map(|n| (n.node.as_str(), n.weight))
        .collect();
    assert_eq!(nodes, vec![("a", Some(3)), ("b", None)]);
    assert_eq!(d.selector, vec![("zone".to_owned(), "eu".to_owned())]);
    assert_eq!(d.set, vec!["db.TZ=UTC".to_owned(), "db.URL=x=y".to_owned()]);
    assert!(d.dry_run);
}

#[test]
fn deploy_without_a_version_is_refused() {
    let e = refused(&["deploy", "weather", "--env", "prod", "--name", "web"]);
    assert_eq!(e.kind(), ErrorKind::ValueValidation);
    assert!(e.to_string().contains("APP@VERSION"), "{e}");
    refused(&["deploy", "weather@", "--env", "prod", "--name", "web"]);
    refused(&["deploy", "@1.0.0", "--env", "prod", "--name", "web"]);
}

#[test]
fn deploy_refuses_bad_weights_and_overrides() {
    let base = ["deploy", "weather@1.0.0", "--env", "prod", "--name", "web"];
    for extra in [
        ["--node", "a=heavy"],
        ["--node", "=3"],
        ["--set", "TZ=UTC"],
        ["--set", "db.TZ"],
        ["--set", ".TZ=UTC"],
        ["--selector", "zone"],
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(&extra);
        refused(&args);
    }
}

#[test]
fn node_label_sets_and_removes() {
    let cli = parse(&[
        "node",
        "label",
        "gw-1",
        "zone=eu",
        "rack-",
        "example.com/tier=edge",
    ]);
    let Command::Node(NodeCommand::Label { node, changes }) = cli.command else {
        panic!("not node label: {:?}", cli.command)
    };
    assert_eq!(node, "gw-1");
    assert_eq!(
        changes,
        vec![
            LabelChange::Set("zone".into(), "eu".into()),
            LabelChange::Remove("rack".into()),
            LabelChange::Set("example.com/tier".into(), "edge".into()),
        ]
    );
    refused(&["node", "label", "gw-1"]);
    refused(&["node", "label", "gw-1", "zone"]);
    refused(&["node", "label", "gw-1", "bad key=x"]);
}

#[test]
fn global_options_go_before_or_after_the_subcommand() {
    let cli = parse(&["env", "list", "-o", "json", "--cloud", "http://cloud:9000"]);
    assert_eq!(cli.client.output, OutputFormat::Json);
    assert_eq!(cli.client.cloud.as_str(), "http://cloud:9000/");
    let cli = parse(&["-o", "json", "status", "web"]);
    assert_eq!(cli.client.output, OutputFormat::Json);
    let cli = parse(&["--token", "secret", "node", "list", "--output", "table"]);
    assert_eq!(cli.client.output, OutputFormat::Table);
    assert_eq!(cli.client.token.as_deref(), Some("secret"));
    refused(&["env", "list", "-o", "yaml"]);
    refused(&["env", "list", "--cloud", "ftp://cloud"]);
    refused(&["env", "list", "--cloud", "not a url"]);
}

#[test]
fn env_create_collects_labels_and_entries() {
    let cli = parse(&[
        "env",
        "create",
        "prod",
        "--label",
        "tier=edge",
        "--entry",
        "10.0.0.1",
        "--entry",
        "gw.example:8443",
    ]);
    let Command::Env(skerry_cloud::cli::env::EnvCommand::Create {
        name,
        labels,
        entries,
    }) = cli.command
    else {
        panic!("not env create: {:?}", cli.command)
    };
    assert_eq!(name, "prod");
    assert_eq!(labels, vec![("tier".to_owned(), "edge".to_owned())]);
    assert_eq!(
        entries,
        vec!["10.0.0.1".to_owned(), "gw.example:8443".to_owned()]
    );
}

#[test]
fn app_show_takes_an_optional_version() {
    let cli = parse(&["app", "show", "weather"]);
    let Command::App(AppCommand::Show { app }) = cli.command else {
        panic!("not app show")
    };
    assert_eq!(
        app,
        AppRef {
            app: "weather".into(),
            version: None
        }
    );
    let cli = parse(&["app", "show", "weather@1.0.0"]);
    let Command::App(AppCommand::Show { app }) = cli.command else {
        panic!("not app show")
    };
    assert_eq!(
        app,
        AppRef {
            app: "weather".into(),
            version: Some("1.0.0".into())
        }
    );
    refused(&["app", "show", "weather@"]);
    refused(&["app", "publish"]);
}

#[test]
fn since_becomes_an_absolute_time_and_bad_times_are_refused() {
    let cli = parse(&["events", "--since", "10m", "--node", "gw-1"]);
    let Command::Events(EventsArgs {
        since: Some(since),
        node,
        command: None,
        ..
    }) = cli.command
    else {
        panic!("not events --since: {:?}", cli.command)
    };
    assert!(since.ends_with('Z') && since.contains('T'), "{since}");
    assert_eq!(node.as_deref(), Some("gw-1"));
    let cli = parse(&["events", "--since", "2026-11-21T10:00:00Z"]);
    let Command::Events(EventsArgs { since, .. }) = cli.command else {
        panic!("not events")
    };
    assert_eq!(since.as_deref(), Some("2026-11-21T10:00:00.000Z"));
    let e = refused(&["events", "--since", "yesterday"]);
    assert!(e.to_string().contains("--since"), "{e}");
    refused(&["logs", "web", "--since", "soon"]);
}

#[test]
fn events_verify_is_a_subcommand_that_takes_no_filters() {
    let cli = parse(&["events", "verify", "-o", "json"]);
    let Command::Events(EventsArgs {
        command: Some(EventsCommand::Verify),
        ..
    }) = cli.command
    else {
        panic!("not events verify: {:?}", cli.command)
    };
    assert_eq!(cli.client.output, OutputFormat::Json);
    let cli = parse(&["events", "--follow"]);
    assert!(matches!(
        cli.command,
        Command::Events(EventsArgs {
            follow: true,
            command: None,
            ..
        })
    ));
    refused(&["events", "--follow", "verify"]);
}

#[test]
fn node_token_checks_its_ttl() {
    let cli = parse(&["node", "token", "--env", "prod", "--ttl", "2h"]);
    let Command::Node(NodeCommand::Token { env, ttl }) = cli.command else {
        panic!("not token")
    };
    assert_eq!((env.as_str(), ttl.as_deref()), ("prod", Some("2h")));
    refused(&["node", "token", "--env", "prod", "--ttl", "forever"]);
    refused(&["node", "token"]);
}

#[test]
fn commands_of_tokens_logs_and_rollouts_parse() {
    parse(&["token", "create", "--role", "viewer", "--env", "prod"]);
    parse(&["token", "list"]);
    parse(&["token", "revoke", "t-1"]);
    parse(&["node", "remove", "gw-1"]);
    parse(&["node", "logs", "gw-1", "--since", "1h"]);
    parse(&["upgrade", "web", "--to", "1.1.0"]);
    parse(&["rollback", "web"]);
    parse(&[
        "upgrade",
        "web",
        "--to",
        "1.1.0",
        "--batch",
        "1,10%,100%",
        "--settle",
        "30s",
        "--timeout",
        "10m",
        "--max-unavailable",
        "2",
        "--max-failed",
        "10%",
        "--set",
        "db.TZ=UTC",
        "--node",
        "gw-1=3",
        "--no-auto-rollback",
        "--dry-run",
    ]);
    // Without --to, an upgrade changes overrides and weights only.
    parse(&["upgrade", "web", "--set", "db.TZ=UTC"]);
    for action in ["status", "pause", "resume", "abort"] {
        parse(&["rollout", action, "web"]);
    }
    parse(&[
        "logs",
        "web",
        "--component",
        "db",
        "--node",
        "gw-1",
        "--follow",
    ]);
    parse(&["undeploy", "web", "--purge"]);
    refused(&["token", "create", "--role", "root"]);
    refused(&["upgrade", "web", "--settle", "5"]);
    refused(&["rollout", "restart", "web"]);
}

#[test]
fn serve_and_help_parse() {
    let cli = parse(&["serve", "--data", "/tmp/x", "--no-local-node"]);
    assert!(matches!(cli.command, Command::Serve(_)));
    let e = Cli::try_parse_from(["skerry", "--help"]).err();
    assert_eq!(e.map(|e| e.exit_code()), Some(0));
}

#[test]
fn the_command_definition_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

/// `--help` offers the commands that work: `deploy`, `token`, and the rollouts' `upgrade`,
/// `rollback` and `rollout`.
#[test]
fn help_offers_the_commands_that_work() {
    let help = |args: &[&str]| -> String {
        let mut argv = vec!["skerry"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv) {
            Err(e) if e.kind() == ErrorKind::DisplayHelp => e.render().to_string(),
            other => panic!("{args:?}: not a help text: {other:?}"),
        }
    };
    // The command names of a help text's "Commands:" section.
    let commands = |text: &str| -> Vec<String> {
        text.lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    };
    for args in [&["--help"][..], &["-h"], &["help"]] {
        let top = commands(&help(args));
        assert!(top.contains(&"deploy".to_owned()), "{args:?}: {top:?}");
        assert!(top.contains(&"token".to_owned()), "{args:?}: {top:?}");
        for rollouts in ["upgrade", "rollback", "rollout"] {
            assert!(
                top.contains(&rollouts.to_owned()),
                "{args:?} does not offer {rollouts}: {top:?}"
            );
        }
    }
    let node = commands(&help(&["node", "--help"]));
    assert!(node.contains(&"token".to_owned()), "{node:?}");
    assert!(node.contains(&"leave".to_owned()), "{node:?}");
    assert!(node.contains(&"remove".to_owned()), "{node:?}");
}
