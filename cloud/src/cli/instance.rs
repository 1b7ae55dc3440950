//! `skerry deploy | undeploy | status`: instances of app versions.

use clap::Args;
use skerry_shared::manifest::MAX_ENV;
use skerry_shared::quantity::Memory;

use super::client::Client;
use super::error::CliError;
use super::output::{self, OutputFormat, Table};
use super::values::{self, AppVersion};
use crate::api::dto::{
    DeployInstance, DeployNode, DryRunDto, InstanceDto, ReplicaStatusDto, ResourcesDto, UndeployDto,
};

/// `skerry deploy APP@VERSION --env ENV --name INSTANCE ...`
#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// The app version to deploy.
    #[arg(value_name = "APP@VERSION", value_parser = values::app_version)]
    pub app: AppVersion,
    /// The environment to deploy into.
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// The instance's name, unique across the cloud.
    #[arg(long, value_name = "INSTANCE")]
    pub name: String,
    /// A node to run on, with an optional weight (repeatable).
    #[arg(long = "node", value_name = "NODE[=WEIGHT]", value_parser = values::node_choice)]
    pub nodes: Vec<DeployNode>,
    /// Run on the environment's nodes with this label (repeatable; all must match).
    #[arg(long = "selector", value_name = "K=V", value_parser = values::label)]
    pub selector: Vec<(String, String)>,
    /// Override a component's environment variable (repeatable).
    #[arg(long = "set", value_name = "COMPONENT.VAR=VALUE", value_parser = values::env_override)]
    pub set: Vec<String>,
    /// Show what would happen on each node, and record nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `skerry undeploy INSTANCE [--purge]`
#[derive(Debug, Clone, Args)]
pub struct UndeployArgs {
    pub instance: String,
    /// Also delete the instance's named storage on its nodes.
    #[arg(long)]
    pub purge: bool,
}

/// `skerry status [INSTANCE]`
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// One instance; all of them when left out.
    pub instance: Option<String>,
}

pub async fn deploy(
    args: DeployArgs,
    client: &Client,
    format: OutputFormat,
) -> Result<(), CliError> {
    let dry_run = args.dry_run;
    if args.set.len() > MAX_ENV {
        return Err(CliError::Usage {
            message: format!(
                "{} --set overrides; at most {MAX_ENV} are accepted (as many variables as a component may have)",
                args.set.len()
            ),
            field: Some("--set".to_owned()),
        });
    }
    let body = DeployInstance {
        app: args.app.app,
        version: args.app.version,
        env: args.env,
        name: args.name,
        nodes: args.nodes,
        selector: values::label_map(&args.selector),
        set: args.set,
        dry_run,
    };
    let call = client.post(&["instances"]).json(&body);
    if dry_run {
        let plan: DryRunDto = call.fetch().await?;
        return match format {
            OutputFormat::Json => output::json(&plan),
            OutputFormat::Table => output::line(&render_dry_run(&plan)),
        };
    }
    let instance: InstanceDto = call.fetch().await?;
    match format {
        OutputFormat::Json => output::json(&instance),
        OutputFormat::Table => output::line(&render_deployed(&instance)),
    }
}

/// `deployed weather@1.0.0 as web in prod on 2 node(s): gw-1 (weight 1), gw-2 (weight 3)`,
/// then a line per unschedulable node.
pub fn render_deployed(i: &InstanceDto) -> String {
    let targets: Vec<String> = i
        .nodes
        .iter()
        .map(|t| format!("{} (weight {})", t.name, t.weight))
        .collect();
    let mut text = format!(
        "deployed {}@{} as {} in {} on {} node(s)",
        i.app,
        i.version,
        i.name,
        i.env,
        i.nodes.len()
    );
    if !targets.is_empty() {
        text.push_str(": ");
        text.push_str(&targets.join(", "));
    }
    for u in &i.unschedulable {
        text.push_str(&format!(
            "\nunschedulable on {} ({}): {}",
            u.name,
            u.id,
            u.reasons.join("; ")
        ));
    }
    text
}

/// Per node a header; what the instance needs of the node and what is free (CPU, memory,
/// each fixed host port); why it does not fit, if it does not; the containers and
/// processes created, replaced or removed; then numbered rounds of actions (actions of one
/// round do not wait on each other). Then the unschedulable nodes, each with its room, then
/// `dry run: nothing was recorded`.
pub fn render_dry_run(plan: &DryRunDto) -> String {
    let mut lines = vec![format!(
        "instance {} = {}@{} in {}",
        plan.instance, plan.app, plan.version, plan.env
    )];
    for node in &plan.plan {
        lines.push(format!(
            "node {} ({}) weight {}",
            node.node, node.node_id, node.weight
        ));
        node_lines(&mut lines, node);
        if node.steps.iter().all(Vec::is_empty) {
            lines.push("  nothing to do".to_owned());
        }
        let mut number = 0;
        for round in node.steps.iter().filter(|r| !r.is_empty()) {
            number += 1;
            let label = format!("{number}.");
            for (i, action) in round.iter().enumerate() {
                let prefix = if i == 0 { label.as_str() } else { "" };
                lines.push(format!("  {prefix:<width$} {action}", width = label.len()));
            }
        }
    }
    for u in &plan.unschedulable {
        lines.push(format!(
            "unschedulable: node {} ({}): {}",
            u.name,
            u.id,
            u.reasons.join("; ")
        ));
        if let Some(unfit) = plan.unfit.iter().find(|f| f.node_id == u.id) {
            room_lines(&mut lines, &unfit.resources, &[]);
        }
    }
    lines.push("dry run: nothing was recorded".to_owned());
    lines.join("\n")
}

/// `  LABEL      TEXT`, the label padded so that the texts line up.
fn labelled(label: &str, text: &str) -> String {
    format!("  {label:<10} {text}")
}

/// One node's room, shortfalls and the replicas created, replaced or removed (a deploy's
/// or an upgrade's dry run).
pub(super) fn node_lines(lines: &mut Vec<String>, node: &crate::api::dto::NodePlanDto) {
    room_lines(lines, &node.resources, &node.shortfalls);
    for c in &node.changes {
        let init = (c.component_kind == "init").then_some(" (init)");
        let init = init.unwrap_or_default();
        lines.push(labelled(
            &c.action,
            &format!("{} {}{init}", c.kind, c.replica),
        ));
    }
}

/// The room lines of one node: CPU, memory, each host port, then each shortfall.
fn room_lines(lines: &mut Vec<String>, r: &ResourcesDto, shortfalls: &[String]) {
    let mem = |b: u64| Memory::from_bytes(b).to_string();
    let (c, m) = (&r.cpu_millicores, &r.memory_bytes);
    let cpu = format!("{}m needed, {}m free of {}m", c.needed, c.free, c.capacity);
    lines.push(labelled("cpu", &cpu));
    let memory = [m.needed, m.free, m.capacity].map(mem);
    let [needed, free, capacity] = &memory;
    lines.push(labelled(
        "memory",
        &format!("{needed} needed, {free} free of {capacity}"),
    ));
    for h in &r.host_ports {
        let state = match &h.in_use_by {
            None => "free".to_owned(),
            Some(other) => format!("in use by instance {other}"),
        };
        lines.push(labelled(
            "host port",
            &format!("{} (component {}) {state}", h.port, h.component),
        ));
    }
    for s in shortfalls {
        lines.push(labelled("unfit", s));
    }
}

pub async fn undeploy(
    args: UndeployArgs,
    client: &Client,
    format: OutputFormat,
) -> Result<(), CliError> {
    let purge = if args.purge { "true" } else { "false" };
    let answer: UndeployDto = client
        .delete(&["instances", &args.instance])
        .query(&[("purge", Some(purge))])
        .fetch()
        .await?;
    match format {
        OutputFormat::Json => output::json(&answer),
        OutputFormat::Table => output::line(&format!(
            "undeployed {} ({})",
            answer.name,
            if answer.purge {
                "storage purged"
            } else {
                "storage kept"
            }
        )),
    }
}

pub async fn status(
    args: StatusArgs,
    client: &Client,
    format: OutputFormat,
) -> Result<(), CliError> {
    let instances: Vec<InstanceDto> = match &args.instance {
        Some(name) => {
            let one: InstanceDto = client.get(&["instances", name]).fetch().await?;
            if format == OutputFormat::Json {
                return output::json(&one);
            }
            vec![one]
        }
        None => client.get(&["instances"]).fetch().await?,
    };
    match format {
        OutputFormat::Json => output::json(&instances),
        OutputFormat::Table => status_table(&instances).print(),
    }
}

/// The `STATE` cell: the state, and for a replica of a node that stopped reporting,
/// `(stale: reported TIME)` (`(stale: reported at an unknown time)` for a report an older
/// cloud stored without its time), so an old report is never read as the current state.
pub fn state_cell(r: &ReplicaStatusDto) -> String {
    match (r.stale, &r.reported) {
        (false, _) => r.state.clone(),
        (true, Some(at)) => format!("{} (stale: reported {at})", r.state),
        (true, None) => format!("{} (stale: reported at an unknown time)", r.state),
    }
}

/// One row per replica, then a row for each unschedulable node the
/// status does not already cover, then a bare row for an instance with nothing to show yet.
pub fn status_table(instances: &[InstanceDto]) -> Table {
    let mut table = Table::new(&[
        "INSTANCE",
        "COMPONENT",
        "KIND",
        "NODE",
        "REPLICA",
        "STATE",
        "RESTARTS",
        "LAST EXIT",
        "REASON",
    ]);
    for i in instances {
        // In the cloud's order: per component, per node, per replica.
        let rows = &i.status;
        for r in rows {
            table.row(vec![
                i.name.clone(),
                r.component.clone(),
                r.kind.clone(),
                r.node.clone(),
                r.replica.to_string(),
                state_cell(r),
                r.restarts.to_string(),
                output::or_dash(r.last_exit.as_deref().unwrap_or_default()),
                output::or_dash(r.reason.as_deref().unwrap_or_default()),
            ]);
        }
        let mut shown = !rows.is_empty();
        for u in &i.unschedulable {
            if rows.iter().any(|r| r.node_id == u.id) {
                continue;
            }
            shown = true;
            table.row(vec![
                i.name.clone(),
                "-".to_owned(),
                "-".to_owned(),
                u.name.clone(),
                "-".to_owned(),
                "Unschedulable".to_owned(),
                "0".to_owned(),
                "-".to_owned(),
                output::or_dash(&u.reasons.join("; ")),
            ]);
        }
        if !shown {
            let mut row = vec![i.name.clone()];
            row.extend(std::iter::repeat_n("-".to_owned(), 8));
            table.row(row);
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::dto::{
        AmountDto, ChangeDto, HostPortDto, NodePlanDto, UnfitNodeDto, UnschedulableDto,
    };

    fn unschedulable() -> UnschedulableDto {
        UnschedulableDto {
            id: "n-3".into(),
            name: "gw-3".into(),
            reasons: vec!["arch arm64, needs amd64".into(), "no docker".into()],
        }
    }

    fn amount(needed: u64, free: u64, capacity: u64) -> AmountDto {
        AmountDto {
            needed,
            free,
            capacity,
        }
    }

    fn change(action: &str, kind: &str, replica: &str, component_kind: &str) -> ChangeDto {
        ChangeDto {
            action: action.into(),
            kind: kind.into(),
            replica: replica.into(),
            component_kind: component_kind.into(),
        }
    }

    #[test]
    fn dry_run_lists_the_room_the_changes_and_the_rounds_per_node() {
        let plan = DryRunDto {
            instance: "web".into(),
            app: "weather".into(),
            version: "1.0.0".into(),
            env: "prod".into(),
            plan: vec![NodePlanDto {
                node: "gw-1".into(),
                node_id: "n-1".into(),
                weight: 2,
                steps: vec![
                    vec!["create network web".into()],
                    vec!["start db/0".into(), "start api/0".into()],
                ],
                resources: ResourcesDto {
                    cpu_millicores: amount(250, 3500, 4000),
                    memory_bytes: amount(96 << 20, 2 << 30, 2 << 30),
                    host_ports: vec![HostPortDto {
                        port: 18080,
                        component: "api".into(),
                        in_use_by: None,
                    }],
                },
                shortfalls: vec![],
                changes: vec![
                    change("create", "container", "web/migrate.0", "init"),
                    change("create", "container", "web/db.0", "service"),
                    change("create", "process", "web/api.0", "service"),
                ],
            }],
            unschedulable: vec![unschedulable()],
            unfit: vec![UnfitNodeDto {
                node: "gw-3".into(),
                node_id: "n-3".into(),
                resources: ResourcesDto {
                    cpu_millicores: amount(250, 1000, 1000),
                    memory_bytes: amount(96 << 20, 0, 256 << 20),
                    host_ports: vec![HostPortDto {
                        port: 18080,
                        component: "api".into(),
                        in_use_by: Some("north".into()),
                    }],
                },
                shortfalls: vec!["arch arm64, needs amd64".into(), "no docker".into()],
            }],
        };
        assert_eq!(
            render_dry_run(&plan),
            "instance web = weather@1.0.0 in prod\n\
             node gw-1 (n-1) weight 2\n  \
             cpu        250m needed, 3500m free of 4000m\n  \
             memory     96Mi needed, 2Gi free of 2Gi\n  \
             host port  18080 (component api) free\n  \
             create     container web/migrate.0 (init)\n  \
             create     container web/db.0\n  \
             create     process web/api.0\n  \
             1. create network web\n  \
             2. start db/0\n     \
             start api/0\n\
             unschedulable: node gw-3 (n-3): arch arm64, needs amd64; no docker\n  \
             cpu        250m needed, 1000m free of 1000m\n  \
             memory     96Mi needed, 0 free of 256Mi\n  \
             host port  18080 (component api) in use by instance north\n\
             dry run: nothing was recorded"
        );
    }

    #[test]
    fn a_target_that_would_not_fit_says_why() {
        let node = NodePlanDto {
            node: "gw-1".into(),
            node_id: "n-1".into(),
            weight: 1,
            steps: vec![],
            resources: ResourcesDto::default(),
            shortfalls: vec!["memory: requests 1Gi, 512Mi free of 2Gi".into()],
            changes: vec![change("replace", "container", "web/db.0", "service")],
        };
        let text = render_dry_run(&DryRunDto {
            instance: "web".into(),
            app: "weather".into(),
            version: "2.0.0".into(),
            env: "prod".into(),
            plan: vec![node],
            unschedulable: vec![],
            unfit: vec![],
        });
        let expected = "\n  unfit      memory: requests 1Gi, 512Mi free of 2Gi\n  \
                        replace    container web/db.0\n  nothing to do\n";
        assert!(text.contains(expected), "{text}");
    }

    /// Instance `web` of weather@1.0.0 in prod with these replica rows and unschedulable
    /// nodes.
    fn web(status: Vec<ReplicaStatusDto>, unschedulable: Vec<UnschedulableDto>) -> InstanceDto {
        InstanceDto {
            name: "web".into(),
            app: "weather".into(),
            version: "1.0.0".into(),
            env: "prod".into(),
            mode: "production".into(),
            nodes: vec![],
            unschedulable,
            selector: Default::default(),
            set: vec![],
            stopped: false,
            stopped_on: vec![],
            deployed: "t".into(),
            seq: 1,
            status,
            status_omitted: None,
        }
    }

    #[test]
    fn status_has_a_row_per_replica_and_per_unschedulable_node() {
        let replica = |replica, state: &str| ReplicaStatusDto {
            version: "1.0.0".into(),
            node: "gw-1".into(),
            node_id: "n-1".into(),
            component: "db".into(),
            kind: "service".into(),
            replica,
            state: state.into(),
            restarts: 0,
            last_exit: None,
            reason: None,
            stale: false,
            reported: None,
            ports: Vec::new(),
        };
        let instance = web(
            vec![replica(0, "Running"), replica(1, "Pending")],
            vec![unschedulable()],
        );
        let text = status_table(&[instance]).render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[0].starts_with("INSTANCE   COMPONENT   KIND"),
            "{text}"
        );
        assert!(lines[2].contains("Pending"), "{text}");
        assert!(
            lines[3].contains("Unschedulable") && lines[3].contains("no docker"),
            "{text}"
        );
    }

    #[test]
    fn replicas_of_a_silent_node_are_marked_stale_and_text_is_escaped() {
        let row = |stale, reported: Option<&str>| ReplicaStatusDto {
            version: "1.0.0".into(),
            node: "gw-1".into(),
            node_id: "n-1".into(),
            component: "db".into(),
            kind: "service".into(),
            replica: 0,
            state: "Healthy".into(),
            restarts: 2,
            last_exit: Some("exited 1\r\u{1b}[2K at t".into()),
            reason: Some("pull failed: \u{1b}]0;owned\u{7}".into()),
            stale,
            reported: reported.map(str::to_owned),
            ports: Vec::new(),
        };
        assert_eq!(state_cell(&row(false, Some("t1"))), "Healthy");
        assert_eq!(
            state_cell(&row(true, Some("2026-12-06T19:00:00.000Z"))),
            "Healthy (stale: reported 2026-12-06T19:00:00.000Z)"
        );
        assert_eq!(
            state_cell(&row(true, None)),
            "Healthy (stale: reported at an unknown time)"
        );
        let instance = web(vec![row(true, Some("2026-12-06T19:00:00.000Z"))], vec![]);
        let text = status_table(&[instance]).render();
        assert!(
            text.contains("Healthy (stale: reported 2026-12-06T19:00:00.000Z)"),
            "{text}"
        );
        // What the node sent is escaped: no control character reaches the terminal.
        assert!(text.contains("exited 1\\r\\x1b[2K at t"), "{text}");
        assert!(text.contains("pull failed: \\x1b]0;owned\\x07"), "{text}");
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
    }
}
