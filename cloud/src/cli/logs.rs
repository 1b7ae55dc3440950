//! `skerry logs INSTANCE [--component C] [--node NODE] [--since T] [--follow]`: the log lines
//! the agents collected for an instance, read or followed.
//!
//! In table mode each line is printed as plain text behind its origin, like
//! `kubectl logs --prefix`, so the output can be piped and grepped:
//! ```text
//! gw-1  web-0  app.log   GET /healthz 200
//! gw-2  db-0   (stderr)  checkpoint complete
//! ```
//! (node, component-replica, file, then the line as it was written; the first columns are
//! padded to the widest value seen so far). Every control character but tab is escaped
//! ([`output::escape`]: `\r`, `\x1b`, ...), so an app cannot forge a line of another node
//! or component, or drive the operator's terminal; `-o json` keeps the exact text. Then, on standard error, one line per node whose
//! agent dropped lines for its log quota:
//! `gw-1: 120 lines dropped by the agent (log quota): web-0 app.log lines 1-120`.
//! With `-o json` the API's answer is printed (all pages in one), or, when following, one
//! JSON object per line.

use std::io::Write;

use clap::Args;

use super::client::Client;
use super::error::CliError;
use super::output::{self, OutputFormat};
use super::values;
use crate::api::dto::{LogLineDto, LogsDto, NodeDropsDto, NodeWaitingDto};

/// Lines per request when reading.
const PAGE: usize = 1000;
/// The most runs of dropped lines named per node; the rest are counted.
const DROP_RUNS_SHOWN: usize = 8;
/// The gap between the prefix columns.
const GAP: &str = "  ";

/// `skerry logs INSTANCE ...`
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    pub instance: String,
    /// Only this component's lines.
    #[arg(long, value_name = "C")]
    pub component: Option<String>,
    /// Only this node's lines (name or id).
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// From this time: RFC 3339 or a duration before now (90s, 10m, 2h, 3d).
    #[arg(long, value_name = "T", value_parser = values::since)]
    pub since: Option<String>,
    /// Keep printing lines as they arrive.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

pub async fn run(args: LogsArgs, client: &Client, format: OutputFormat) -> Result<(), CliError> {
    let filters = [
        ("instance", Some(args.instance.as_str())),
        ("component", args.component.as_deref()),
        ("node", args.node.as_deref()),
        ("since", args.since.as_deref()),
    ];
    let mut prefix = Prefix::default();
    if args.follow {
        let mut lines = client
            .get(&["logs"])
            .query(&filters)
            .query(&[("follow", Some("true"))])
            .lines()
            .await?;
        loop {
            let line: LogLineDto = lines.next().await?;
            match format {
                OutputFormat::Json => output::json_line(&line)?,
                OutputFormat::Table => output::line(&prefix.render(&line))?,
            }
        }
    }
    // The API answers a page at a time; print each as it comes (JSON: all at the end).
    let limit = PAGE.to_string();
    let mut after = 0u64;
    let mut all: Vec<LogLineDto> = Vec::new();
    loop {
        let after_text = after.to_string();
        let page: LogsDto = client
            .get(&["logs"])
            .query(&filters)
            .query(&[("after", Some(&after_text)), ("limit", Some(&limit))])
            .fetch()
            .await?;
        let full = page.lines.len() >= PAGE;
        after = page.next;
        match format {
            OutputFormat::Json => all.extend(page.lines),
            OutputFormat::Table => {
                prefix.fit(&page.lines);
                if !page.lines.is_empty() {
                    let text: Vec<String> = page.lines.iter().map(|l| prefix.render(l)).collect();
                    output::line(&text.join("\n"))?;
                }
            }
        }
        if !full {
            match format {
                OutputFormat::Json => output::json(&LogsDto {
                    lines: all,
                    next: after,
                    dropped: page.dropped,
                    waiting: page.waiting,
                })?,
                OutputFormat::Table => {
                    let mut err = std::io::stderr().lock();
                    for d in &page.dropped {
                        let _ = writeln!(err, "{}", output::escape(&drop_line(d)));
                    }
                    for w in &page.waiting {
                        let _ = writeln!(err, "{}", output::escape(&waiting_line(w)));
                    }
                }
            }
            return Ok(());
        }
    }
}

/// The origin of each line, in columns that only grow.
#[derive(Debug, Default)]
struct Prefix {
    widths: [usize; 3],
}

impl Prefix {
    fn cells(l: &LogLineDto) -> [String; 3] {
        [
            output::escape(&l.node_name).into_owned(),
            output::escape(&format!("{}-{}", l.component, l.replica)).into_owned(),
            output::escape(&l.file).into_owned(),
        ]
    }

    fn grow(&mut self, cells: &[String; 3]) {
        for (w, c) in self.widths.iter_mut().zip(cells) {
            *w = (*w).max(c.chars().count());
        }
    }

    /// Widens the columns for a page of lines about to be printed.
    fn fit(&mut self, lines: &[LogLineDto]) {
        for l in lines {
            self.grow(&Self::cells(l));
        }
    }

    /// `NODE  COMPONENT-REPLICA  FILE  TEXT`.
    fn render(&mut self, l: &LogLineDto) -> String {
        let cells = Self::cells(l);
        self.grow(&cells);
        let [w0, w1, w2] = self.widths;
        let [node, origin, file] = cells;
        let text = format!(
            "{node:<w0$}{GAP}{origin:<w1$}{GAP}{file:<w2$}{GAP}{}",
            output::escape(&l.text)
        );
        if l.text.is_empty() {
            text.trim_end().to_owned()
        } else {
            text
        }
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `gw-1: 120 lines dropped by the agent (log quota): web-0 app.log lines 1-120`
fn drop_line(d: &NodeDropsDto) -> String {
    let mut text = format!(
        "{}: {} dropped by the agent (log quota)",
        d.node_name,
        plural(d.lines, "line", "lines")
    );
    let runs: Vec<String> = d
        .files
        .iter()
        .take(DROP_RUNS_SHOWN)
        .map(|f| {
            let last = f.first_line.saturating_add(f.lines.saturating_sub(1));
            let range = if f.lines == 1 {
                format!("line {}", f.first_line)
            } else {
                format!("lines {}-{last}", f.first_line)
            };
            format!("{}-{} {} {range}", f.component, f.replica, f.file)
        })
        .collect();
    if !runs.is_empty() {
        text.push_str(": ");
        text.push_str(&runs.join(", "));
    }
    let more = d.files.len().saturating_sub(DROP_RUNS_SHOWN);
    if more > 0 {
        let runs = if more == 1 { "run" } else { "runs" };
        text.push_str(&format!(", and {more} more {runs}"));
    }
    text
}

/// `gw-1: 5 log files wait for a slot (the agent reads at most 1,024 files of a log_dir
/// at once): web-0 5`
fn waiting_line(w: &NodeWaitingDto) -> String {
    let each: Vec<String> = w
        .replicas
        .iter()
        .map(|r| format!("{}-{} {}", r.component, r.replica, r.files))
        .collect();
    format!(
        "{}: {} wait for a slot (the agent reads at most 1,024 files of a log_dir at once): {}",
        w.node_name,
        plural(w.files, "log file", "log files"),
        each.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::dto::FileDropsDto;

    fn line(node: &str, component: &str, replica: u32, file: &str, text: &str) -> LogLineDto {
        LogLineDto {
            cursor: 1,
            node: "00000000-0000-0000-0000-000000000001".into(),
            node_name: node.into(),
            component: component.into(),
            replica,
            file: file.into(),
            line: 1,
            part: 0,
            continued: false,
            time: "2026-11-21T10:00:00.000Z".into(),
            text: text.into(),
        }
    }

    #[test]
    fn lines_are_prefixed_with_their_origin_in_columns() {
        let lines = vec![
            line("gw-1", "web", 0, "app.log", "GET /healthz 200"),
            line("gateway-22", "db", 1, "(stderr)", "  indented text kept  "),
            line("gw-1", "web", 0, "app.log", ""),
        ];
        let mut p = Prefix::default();
        p.fit(&lines);
        let out: Vec<String> = lines.iter().map(|l| p.render(l)).collect();
        assert_eq!(
            out,
            vec![
                "gw-1        web-0  app.log   GET /healthz 200",
                "gateway-22  db-1   (stderr)    indented text kept  ",
                "gw-1        web-0  app.log",
            ]
        );
        // While following, a wider value widens the columns from then on.
        let mut p = Prefix::default();
        assert_eq!(
            p.render(&lines[0]),
            "gw-1  web-0  app.log  GET /healthz 200"
        );
        p.render(&lines[1]);
        assert_eq!(
            p.render(&lines[0]),
            "gw-1        web-0  app.log   GET /healthz 200"
        );
    }

    #[test]
    fn control_characters_in_lines_and_origins_are_escaped() {
        let mut p = Prefix::default();
        // A line that would return the cursor, clear it and print a forged origin.
        let forged = line(
            "gw-1",
            "web",
            0,
            "app.log",
            "x\r\u{1b}[2Kgw-2  db-0   (stdout)  ok",
        );
        assert_eq!(
            p.render(&forged),
            "gw-1  web-0  app.log  x\\r\\x1b[2Kgw-2  db-0   (stdout)  ok"
        );
        // A file name in the log_dir is the app's text too; tabs in a line are kept.
        let mut p = Prefix::default();
        let named = line("gw-1", "web", 0, "a\u{1b}]0;t\u{7}.log", "col1\tcol2\u{9b}");
        assert_eq!(
            p.render(&named),
            "gw-1  web-0  a\\x1b]0;t\\x07.log  col1\tcol2\\x9b"
        );
    }

    #[test]
    fn drops_are_one_line_per_node() {
        let run = |component: &str, file: &str, first_line: u64, lines: u64| FileDropsDto {
            component: component.into(),
            replica: 0,
            file: file.into(),
            first_line,
            lines,
        };
        let d = NodeDropsDto {
            node: "id".into(),
            node_name: "gw-1".into(),
            lines: 120,
            batches: 3,
            files: vec![run("web", "app.log", 1, 120)],
        };
        assert_eq!(
            drop_line(&d),
            "gw-1: 120 lines dropped by the agent (log quota): web-0 app.log lines 1-120"
        );
        let d = NodeDropsDto {
            lines: 1 + 10 * 9,
            files: std::iter::once(run("db", "(stdout)", 7, 1))
                .chain((0..9).map(|i| run("web", "app.log", 100 * i + 1, 10)))
                .collect(),
            ..d
        };
        let text = drop_line(&d);
        assert!(
            text.starts_with("gw-1: 91 lines dropped by the agent (log quota): db-0 (stdout) line 7, web-0 app.log lines 1-10, "),
            "{text}"
        );
        assert!(text.ends_with(", and 2 more runs"), "{text}");
        let d = NodeDropsDto {
            lines: 1,
            files: vec![],
            ..d
        };
        assert_eq!(
            drop_line(&d),
            "gw-1: 1 line dropped by the agent (log quota)"
        );
    }
}
