//! The docs are tested: every example block of README.md and docs/cli.md runs against a
//! real `skerry serve` (with its local node) and real agents, and what the program prints
//! is compared with what the page shows, variable parts masked (see
//! `skerry_tests::doctest` for the markers, the masks and the rules).
//!
//! Each page runs in its own scratch directory (the working directory of its commands,
//! with `deploy/` linked in), blocks in page order, against one cloud. `skerry` and
//! `skerry-edge` are the binaries of this build (`target/debug`), first on the `PATH`, and
//! `SKERRY_CLOUD` points at the test's cloud and `SKERRY_TOKEN` holds its admin token. `cargo run --release --bin X --` runs `X`.
//! The page's addresses (`127.0.0.1:8080` and `127.0.0.1:7883`, and `18282`/`17882` in
//! docs/cli.md) are replaced by the cloud's, and its scratch paths (`/tmp/docs2`,
//! `/var/lib/skerry-edge`) by the test's directory. `NAME=$(COMMAND)` sets `NAME` for the
//! later commands of the page.
//!
//! A page that no longer matches fails with a diff that names the file and line.
//! `SKERRY_BLESS_DOCS=1` writes the program's output into the page instead, for each
//! command whose output differs and whose expected lines hold no `...` (review the change:
//! the program is the truth only when its output is right).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use skerry_tests::agent::Agent;
use skerry_tests::doctest::{
    Bindings, Block, Directive, ELLIPSIS, Marker, Masks, Page, Side, Step, Tally, align,
    command_to_run, diff,
};
use skerry_tests::images::DockerCleanup;
use skerry_tests::{Cloud, bin, cli, wait_for};

/// How long one command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a `wait:` directive, an agent's enrollment or a background block's first lines
/// may take.
const WAIT_TIMEOUT: Duration = Duration::from_secs(90);

/// The scratch directory the pages show.
const PAGE_SCRATCH: &str = "/tmp/docs2";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("the tests crate has a parent directory"))
}

fn read_page(file: &str) -> (String, Page) {
    let path = repo_root().join(file);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let page = Page::parse(file, &text).unwrap_or_else(|e| panic!("{e}"));
    (text, page)
}

/// What a command printed (standard output and error together) and its status.
struct Output {
    code: Option<i32>,
    text: String,
}

/// A block's long-running command.
struct Background {
    child: Child,
    out: PathBuf,
}

/// One page's run: the cloud, the scratch directory, what carries from one command to
/// the next.
struct Session {
    file: String,
    cloud: Cloud,
    scratch: tempfile::TempDir,
    bin_dir: PathBuf,
    vars: BTreeMap<String, String>,
    bindings: Bindings,
    masks: Masks,
    agents: Vec<Agent>,
    background: Vec<Background>,
    runs: usize,
    failures: Vec<String>,
    blessed: Vec<(Step, Vec<String>)>,
}

impl Session {
    fn start(file: &str) -> Session {
        let cloud = Cloud::start_with_local_node().unwrap_or_else(|e| panic!("{e}"));
        let scratch = tempfile::Builder::new()
            .prefix("skerry-docs-")
            .tempdir()
            .unwrap_or_else(|e| panic!("{e}"));
        let bin_dir = scratch.path().join(".bin");
        fs::create_dir_all(&bin_dir).unwrap_or_else(|e| panic!("{e}"));
        for name in ["skerry", "skerry-edge"] {
            std::os::unix::fs::symlink(bin(name), bin_dir.join(name))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        std::os::unix::fs::symlink(repo_root().join("deploy"), scratch.path().join("deploy"))
            .unwrap_or_else(|e| panic!("{e}"));

        // The local node enrolls at the cloud's first start: its name is the host's.
        let host = wait_for(WAIT_TIMEOUT, || {
            let out = cli(&cloud, &["-o", "json", "node", "list", "--env", "local"]);
            let v = out.json().ok()?;
            let node = v.as_array()?.first()?;
            (node["status"] == "Normal").then(|| node["name"].as_str().map(str::to_owned))?
        })
        .unwrap_or_else(|| panic!("the local node never became Normal:\n{}", cloud.logs()));

        let dir = scratch.path().to_string_lossy().into_owned();
        let api = cloud.listen_addr().to_string();
        let mqtt = cloud.mqtt_addr().to_string();
        let mut bindings = Bindings::default();
        for page_api in ["127.0.0.1:8080", "127.0.0.1:18282"] {
            bindings.bind(page_api, &api);
        }
        for page_mqtt in ["127.0.0.1:7883", "127.0.0.1:17882"] {
            bindings.bind(page_mqtt, &mqtt);
        }
        bindings.bind("/var/lib/skerry-edge", &format!("{dir}/edge"));
        bindings.bind(PAGE_SCRATCH, &dir);
        let masks = Masks {
            page_host: Some("vm".to_owned()),
            actual_host: Some(host),
            actual_literal: vec![
                (dir.clone(), PAGE_SCRATCH.to_owned()),
                (api, "127.0.0.1:8080".to_owned()),
                (mqtt, "127.0.0.1:7883".to_owned()),
            ],
        };
        Session {
            file: file.to_owned(),
            cloud,
            scratch,
            bin_dir,
            vars: BTreeMap::new(),
            bindings,
            masks,
            agents: Vec::new(),
            background: Vec::new(),
            runs: 0,
            failures: Vec::new(),
            blessed: Vec::new(),
        }
    }

    fn command(&self, script: &str) -> Command {
        let path = std::env::var("PATH").unwrap_or_default();
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(format!("exec 2>&1\n{script}"))
            .current_dir(self.scratch.path())
            .env("PATH", format!("{}:{path}", self.bin_dir.display()))
            .env("SKERRY_CLOUD", self.cloud.url())
            // As the README's reader does after `export SKERRY_TOKEN=...`.
            .env("SKERRY_TOKEN", self.cloud.token())
            .env_remove("SKERRY_ENROLL_TOKEN")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .envs(&self.vars)
            .stdin(Stdio::null());
        cmd
    }

    /// The page's command as it is run here.
    fn prepare(&self, command: &str) -> String {
        self.bindings.apply(&command_to_run(command))
    }

    fn out_file(&mut self) -> PathBuf {
        self.runs += 1;
        self.scratch.path().join(format!(".out-{}", self.runs))
    }

    /// Runs `script` to its end (at most [`COMMAND_TIMEOUT`]).
    fn run(&mut self, script: &str) -> Output {
        let out = self.out_file();
        let file = fs::File::create(&out).unwrap_or_else(|e| panic!("{e}"));
        let mut child = self
            .command(script)
            .stdout(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn bash: {e}"));
        let status = wait_for(COMMAND_TIMEOUT, || child.try_wait().ok().flatten());
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        Output {
            code: status.and_then(|s| s.code()),
            text: fs::read_to_string(&out).unwrap_or_default(),
        }
    }

    fn fail(&mut self, line: usize, message: String) {
        self.failures
            .push(format!("{}:{line}: {message}", self.file));
    }

    fn directives(&mut self, block: &Block, directives: &[Directive]) {
        for d in directives {
            match d {
                Directive::Setup(script) => {
                    let script = self.prepare(script);
                    let out = self.run(&script);
                    if out.code != Some(0) {
                        self.fail(
                            block.line,
                            format!("setup `{script}` exited {:?}:\n{}", out.code, out.text),
                        );
                    }
                }
                Directive::Wait(script) => {
                    let script = self.prepare(script);
                    let mut last = None;
                    let done = wait_for(WAIT_TIMEOUT, || {
                        let out = self.run(&script);
                        let ok = out.code == Some(0);
                        last = Some(out);
                        ok.then_some(())
                    });
                    if done.is_none() {
                        let text = last.map(|o| o.text).unwrap_or_default();
                        self.fail(
                            block.line,
                            format!("`wait: {script}` did not succeed within {WAIT_TIMEOUT:?}; last output:\n{text}"),
                        );
                    }
                }
                Directive::Agent { name, env, profile } => {
                    let profile = profile.as_deref().unwrap_or("x86-64-host");
                    let agent = Agent::enroll_profile(&self.cloud, env, name, profile, &[])
                        .unwrap_or_else(|e| {
                            panic!("{}:{}: agent {name}: {e}", self.file, block.line)
                        });
                    let normal = wait_for(WAIT_TIMEOUT, || {
                        let v = cli(&self.cloud, &["-o", "json", "node", "show", name])
                            .json()
                            .ok()?;
                        (v["status"] == "Normal").then_some(())
                    });
                    if normal.is_none() {
                        self.fail(
                            block.line,
                            format!("agent {name} never became Normal:\n{}", agent.logs()),
                        );
                    }
                    self.agents.push(agent);
                }
                Directive::File(name) => {
                    let path = self.scratch.path().join(name);
                    let text = block.preceding.clone().unwrap_or_default();
                    fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                }
                Directive::Background => {}
            }
        }
    }

    fn masked(&self, side: Side, lines: impl IntoIterator<Item = String>) -> Vec<String> {
        lines
            .into_iter()
            .map(|l| self.masks.line(side, &l))
            .collect()
    }

    /// Compares a step's output; learns the values it carries on a match.
    fn check(&mut self, step: &Step, text: &str, prefix_only: bool) -> Result<(), String> {
        let Some(expected) = &step.expected else {
            return Ok(());
        };
        let mut exp: Vec<String> = self.masked(Side::Page, expected.iter().map(|(_, l)| l.clone()));
        if prefix_only {
            exp.push(ELLIPSIS.to_owned());
        }
        let act = self.masked(Side::Actual, text.lines().map(str::to_owned));
        match align(&exp, &act) {
            Some(pairs) => {
                let raw: Vec<&str> = text.lines().collect();
                for (i, j) in pairs {
                    if let (Some((_, page)), Some(actual)) = (expected.get(i), raw.get(j)) {
                        self.bindings.learn(page, actual);
                    }
                }
                Ok(())
            }
            None => {
                let shown: Vec<(usize, String)> = expected
                    .iter()
                    .zip(&exp)
                    .map(|((n, _), m)| (*n, m.clone()))
                    .collect();
                Err(diff(&self.file, &shown, &act))
            }
        }
    }

    fn block(&mut self, block: &Block, directives: &[Directive]) {
        self.directives(block, directives);
        let background = directives.contains(&Directive::Background);
        for step in &block.steps {
            let script = self.prepare(&step.command);
            if background {
                self.background_step(step, &script);
                continue;
            }
            let out = if let Some((var, inner)) = assignment(&script) {
                let out = self.run(inner);
                if out.code != Some(0) {
                    self.fail(
                        step.line,
                        format!("`{inner}` (for {var}) exited {:?}:\n{}", out.code, out.text),
                    );
                }
                self.vars.insert(var.to_owned(), out.text.trim().to_owned());
                Output {
                    code: out.code,
                    text: String::new(),
                }
            } else {
                self.run(&script)
            };
            if out.code.is_none() {
                self.fail(
                    step.line,
                    format!("`{script}` did not end within {COMMAND_TIMEOUT:?}"),
                );
                continue;
            }
            if let Err(d) = self.check(step, &out.text, false) {
                self.fail(step.line, format!("$ {script}\nexit {:?}\n{d}", out.code));
                if !step
                    .expected
                    .iter()
                    .flatten()
                    .any(|(_, l)| l.trim() == ELLIPSIS)
                {
                    let lines = out.text.lines().map(|l| self.unmask_for_page(l)).collect();
                    self.blessed.push((step.clone(), lines));
                }
            }
        }
    }

    /// The program's line as the page would show it: the scratch directory and addresses
    /// the page's.
    fn unmask_for_page(&self, line: &str) -> String {
        let mut line = line.to_owned();
        for (from, to) in &self.masks.actual_literal {
            line = line.replace(from.as_str(), to);
        }
        line
    }

    fn background_step(&mut self, step: &Step, script: &str) {
        let out = self.out_file();
        let file = fs::File::create(&out).unwrap_or_else(|e| panic!("{e}"));
        let child = self
            .command(&format!("exec {script}"))
            .stdout(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn bash: {e}"));
        self.background.push(Background {
            child,
            out: out.clone(),
        });
        let mut last = Err(String::new());
        let matched = wait_for(WAIT_TIMEOUT, || {
            let text = fs::read_to_string(&out).unwrap_or_default();
            last = self.check(step, &text, true);
            last.is_ok().then_some(())
        });
        if matched.is_none() {
            let d = last.err().unwrap_or_default();
            self.fail(step.line, format!("$ {script} (running)\nits first lines never matched within {WAIT_TIMEOUT:?}\n{d}"));
        }
    }

    /// Writes the program's output into the page for each command that differed.
    fn bless(&self, text: &str) {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let mut edits = self.blessed.clone();
        edits.sort_by_key(|(s, _)| std::cmp::Reverse(s.line));
        for (step, new) in edits {
            let expected = step.expected.unwrap_or_default();
            // The command's own lines (a here-document) come first.
            let after_command = step.line + step.command.lines().count() - 1;
            let (from, to) = match (expected.first(), expected.last()) {
                (Some((a, _)), Some((b, _))) => (*a - 1, *b),
                _ => (after_command, after_command),
            };
            lines.splice(from..to, new);
        }
        let path = repo_root().join(&self.file);
        let mut out = lines.join("\n");
        out.push('\n');
        fs::write(&path, out).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("blessed {} command(s) in {}", self.blessed.len(), self.file);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for mut b in self.background.drain(..) {
            let _ = b.child.kill();
            let _ = b.child.wait();
            if std::thread::panicking() {
                eprintln!(
                    "--- {} ---\n{}",
                    b.out.display(),
                    fs::read_to_string(&b.out).unwrap_or_default()
                );
            }
        }
        // What the page's own agents and the local node left on the Docker engine.
        let mut ids = Vec::new();
        node_ids(self.scratch.path(), &mut ids, 0);
        node_ids(&self.cloud.data_dir(), &mut ids, 0);
        for id in ids {
            DockerCleanup::new(id).clean();
        }
    }
}

/// The node ids in `identity/node.json` files under `dir` (a few levels deep).
fn node_ids(dir: &Path, ids: &mut Vec<String>, depth: usize) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "node.json") {
            let id = fs::read_to_string(&path)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["node_id"].as_str().map(str::to_owned));
            ids.extend(id);
        } else if path.is_dir() && depth < 4 {
            node_ids(&path, ids, depth + 1);
        }
    }
}

/// `NAME=$(COMMAND)`: the variable and the command.
fn assignment(script: &str) -> Option<(&str, &str)> {
    let (var, rest) = script.split_once("=$(")?;
    let inner = rest.strip_suffix(')')?;
    let valid = !var.is_empty()
        && var
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    valid.then_some((var, inner))
}

fn run_page(file: &str) {
    let (text, page) = read_page(file);
    let unmarked = page.unmarked();
    assert!(
        unmarked.is_empty(),
        "{file}: example blocks at lines {unmarked:?} are neither run (<!-- doc-test -->) nor marked <!-- not-run: REASON -->"
    );
    let mut tally = Tally::default();
    let mut session = Session::start(file);
    for block in &page.blocks {
        match &block.marker {
            Marker::Run { directives, .. } => {
                tally.run += 1;
                tally.commands += block.steps.len();
                session.block(block, directives);
            }
            Marker::NotRun(reason) => {
                tally
                    .not_run
                    .push((file.to_owned(), block.line, reason.clone()))
            }
            Marker::None => {}
        }
    }
    eprintln!(
        "{file}: ran {} block(s) ({} command(s)), skipped {} block(s) marked not-run:",
        tally.run,
        tally.commands,
        tally.not_run.len()
    );
    for (f, line, reason) in &tally.not_run {
        eprintln!("  {f}:{line}: {reason}");
    }
    if !session.failures.is_empty() {
        if std::env::var_os("SKERRY_BLESS_DOCS").is_some() {
            session.bless(&text);
        }
        panic!(
            "{file}: {} example(s) do not match the program (re-bless with SKERRY_BLESS_DOCS=1 after checking the program is right):\n\n{}",
            session.failures.len(),
            session.failures.join("\n\n")
        );
    }
}

#[test]
fn every_example_block_is_run_or_marked_not_run() {
    for file in ["README.md", "docs/cli.md", "docs/operations.md"] {
        let (_, page) = read_page(file);
        assert!(!page.blocks.is_empty(), "{file}: no example blocks found");
        assert_eq!(
            page.unmarked(),
            Vec::<usize>::new(),
            "{file}: unmarked example blocks"
        );
    }
}

#[test]
fn readme_examples_match_the_program() {
    run_page("README.md");
}

#[test]
fn cli_examples_match_the_program() {
    run_page("docs/cli.md");
}

/// The unit's `Documentation=` names pages its install comment puts there, from `docs/`.
#[test]
fn the_systemd_unit_documents_pages_it_installs() {
    let unit_path = repo_root().join("deploy/systemd/skerry-edge.service");
    let unit = fs::read_to_string(&unit_path).unwrap_or_else(|e| panic!("{e}"));
    let uris: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("Documentation="))
        .flat_map(str::split_whitespace)
        .collect();
    assert!(!uris.is_empty(), "the unit has no Documentation=");
    for uri in uris {
        let installed = uri
            .strip_prefix("file://")
            .unwrap_or_else(|| panic!("{uri}: only installed pages (file://) can be relied on"));
        let name = Path::new(installed)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_else(|| panic!("{uri}: no file name"));
        let source = format!("docs/{name}");
        assert!(
            repo_root().join(&source).is_file(),
            "{uri}: {source} is not in the repository"
        );
        assert!(
            unit.lines()
                .any(|l| l.starts_with('#') && l.contains(&source) && l.contains(installed)),
            "{uri}: the unit's comments do not say to install {source} there"
        );
    }
}

/// What the README's commands write into the repository is ignored by git: the agent's
/// `--data`, the cloud's default data directory, files its commands write with `>`.
#[test]
fn the_readme_data_directories_are_ignored_by_git() {
    let (text, _) = read_page("README.md");
    let mut dirs: Vec<String> = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "--data")
        .map(|w| w[1].to_owned())
        .collect();
    dirs.push("./skerry-data".to_owned());
    let mut paths: Vec<String> = dirs
        .iter()
        .filter(|d| d.starts_with("./"))
        .map(|d| format!("{}/journal.redb", d.trim_end_matches('/')))
        .collect();
    assert!(
        paths.len() >= 2,
        "expected the README's ./ data directories, found {dirs:?}"
    );
    // Files its commands write (`> gw-1.token`).
    paths.extend(
        text.lines()
            .filter(|l| l.starts_with("$ "))
            .filter_map(|l| l.rsplit_once(" > ").map(|(_, f)| f.trim().to_owned())),
    );
    for path in paths {
        let out = Command::new("git")
            .args(["check-ignore", "-q", "--no-index"])
            .arg(&path)
            .current_dir(repo_root())
            .status()
            .unwrap_or_else(|e| panic!("git check-ignore: {e}"));
        assert!(
            out.success(),
            "{path} (from the README) is not in .gitignore"
        );
    }
}
