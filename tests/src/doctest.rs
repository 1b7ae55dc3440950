//! The docs' examples as tests: the shell blocks of a Markdown page, parsed into commands
//! and the output the page shows, and compared with what the program prints, variable
//! parts masked. `tests/tests/docs_examples.rs` runs them against a real `skerry serve`
//! and agents.
//!
//! # Which blocks
//! Every fenced block whose info string is `console`, `sh`, `shell` or `bash` is an example
//! and must be marked, by an HTML comment that ends on the last non-blank line before the
//! fence:
//! - `<!-- doc-test -->` (or `<!-- doc-test: NAME -->`): the block runs. The comment may go
//!   on over more lines, one directive each (see [`Directive`]):
//!   ```text
//!   <!-- doc-test: demo status
//!   agent: gw-2 plant-a
//!   wait: skerry status demo-1 | grep -q Healthy
//!   -->
//!   ```
//! - `<!-- not-run: REASON -->`: the block is not run, for the reason given (a registry
//!   pull, a Ctrl-C, a layout that is not a captured run). The reason must not be empty.
//!
//! A block with neither is an error ([`Page::unmarked`]), so a new example cannot be left
//! out of the test by accident.
//!
//! # Commands and output
//! In a `console` block a line that starts with `$ ` is a command; the lines after it, up
//! to the next command, are what it prints (standard output and standard error, in the
//! order printed). A command with a here-document (`<<'EOF'`) takes the lines up to the
//! terminator. A line `...` in the output stands for any number of lines, and a line that
//! ends in ` ...` for any line that begins with what comes before (the rest being another
//! program's message, such as the Docker engine's). In a `sh` block
//! every line that is not blank and not a `#` comment is a command that shows no output.
//!
//! # Comparing
//! Both sides are put through [`Masks::line`]: the variable parts are replaced by a
//! placeholder, then every run of whitespace becomes one space and the ends are trimmed (so
//! a table whose columns are wider or narrower because a masked value is matches; the
//! alignment itself is not checked). The placeholders, in the order they are tried:
//! - `<time>`: an RFC 3339 time (`2026-11-22T03:06:23.084370Z`).
//! - `<uuid>`: a UUID in its hyphenated form.
//! - `<hex>`: a run of at least 8 hex digits with a letter among them, or of at least 12
//!   digits, standing alone (not inside a word), with an optional `…` after it: ids of
//!   tokens, secrets, digests, hashes, journal epochs, image ids.
//! - `<port>`: the port of `127.0.0.1:N`, `0.0.0.0:N`, `localhost:N` and `[::]:N`.
//! - `<dur>`: a duration (`1.2s`, `350ms`, `6 seconds`, `2 minutes`).
//! - `<host>`: the local node's name, a word: the host's on the program's side, the one
//!   the page shows (`vm`) on the page's.
//! - literal replacements ([`Masks::actual_literal`]): the test's scratch directory on
//!   the program's side becomes the one the page shows (`/tmp/docs2`).
//!
//! # Values that carry over
//! A value the page shows and the program printed differently (a token, a node id) is
//! learnt when a line matches ([`Bindings::learn`]), and replaced in later commands
//! ([`Bindings::apply`]), also when the page shortens it (`skr1.003d3e04…`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The info strings of fenced blocks that are examples.
pub const EXAMPLE_LANGS: [&str; 4] = ["console", "sh", "shell", "bash"];

/// The line that stands for any number of output lines.
pub const ELLIPSIS: &str = "...";

/// A parse error, naming the file and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// How a block is marked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    /// `<!-- doc-test[: NAME] ... -->`.
    Run {
        name: Option<String>,
        directives: Vec<Directive>,
    },
    /// `<!-- not-run: REASON -->`.
    NotRun(String),
    /// No marker: an error.
    None,
}

/// One line of a `doc-test` comment after the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    /// `setup: COMMAND`: a shell command run before the block, which must exit 0; its
    /// output is not compared.
    Setup(String),
    /// `agent: NAME ENV [PROFILE]`: a node enrolled before the block through the harness
    /// ([`crate::agent::Agent`]), waited for until its status is `Normal`.
    Agent {
        name: String,
        env: String,
        profile: Option<String>,
    },
    /// `wait: COMMAND`: before the block, the shell command is run again until it exits 0
    /// (a deadline applies).
    Wait(String),
    /// `file: NAME`: the text of the nearest fenced block before this one that is not an
    /// example (a manifest the page shows) is written to `NAME` in the scratch directory,
    /// so what is deployed is what the page shows.
    File(String),
    /// `background`: the block's one command keeps running (an agent, a server); its
    /// output must begin with the lines the page shows, within a deadline, and it is
    /// stopped when the page ends.
    Background,
}

/// One command of a block and the output the page shows for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The 1-based line of the command in the page.
    pub line: usize,
    /// The command, here-document included.
    pub command: String,
    /// The lines the page shows, each with its line number. `None` for a `sh` block, which
    /// shows none (its output is not compared).
    pub expected: Option<Vec<(usize, String)>>,
}

/// A fenced example block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The 1-based line of the opening fence.
    pub line: usize,
    pub lang: String,
    pub marker: Marker,
    pub steps: Vec<Step>,
    /// The text of the nearest fenced block before this one that is not an example (for
    /// `file:`), if any.
    pub preceding: Option<String>,
}

/// The example blocks of one page.
#[derive(Debug, Clone)]
pub struct Page {
    pub file: String,
    pub blocks: Vec<Block>,
}

impl Page {
    /// Parses `text`, the Markdown of `file`.
    pub fn parse(file: &str, text: &str) -> Result<Page, ParseError> {
        let lines: Vec<&str> = text.lines().collect();
        let err = |line: usize, message: String| ParseError {
            file: file.to_owned(),
            line,
            message,
        };
        let mut blocks = Vec::new();
        let mut preceding: Option<String> = None;
        let mut i = 0;
        while i < lines.len() {
            let Some(info) = fence(lines[i]) else {
                i += 1;
                continue;
            };
            let open = i;
            let close = (open + 1..lines.len())
                .find(|&j| lines[j].trim_start().starts_with("```") && fence(lines[j]).is_some())
                .ok_or_else(|| err(open + 1, "a fenced block that is never closed".into()))?;
            i = close + 1;
            let lang = info.split_whitespace().next().unwrap_or("").to_owned();
            if !EXAMPLE_LANGS.contains(&lang.as_str()) {
                let mut body = lines[open + 1..close].join("\n");
                body.push('\n');
                preceding = Some(body);
                continue;
            }
            let marker = marker_before(&lines, open).map_err(|m| err(open + 1, m))?;
            let body: Vec<(usize, &str)> = (open + 1..close).map(|j| (j + 1, lines[j])).collect();
            let steps = if lang == "console" {
                console_steps(&body)
            } else {
                sh_steps(&body)
            }
            .map_err(|(line, m)| err(line, m))?;
            if let Marker::Run { directives, .. } = &marker {
                if directives.iter().any(|d| matches!(d, Directive::File(_))) && preceding.is_none()
                {
                    return Err(err(
                        open + 1,
                        "`file:` without a fenced block before it".into(),
                    ));
                }
                if steps.is_empty() {
                    return Err(err(open + 1, "a doc-test block without a command".into()));
                }
                if directives.contains(&Directive::Background) && steps.len() != 1 {
                    return Err(err(
                        open + 1,
                        "a background block has exactly one command".into(),
                    ));
                }
            }
            blocks.push(Block {
                line: open + 1,
                lang,
                marker,
                steps,
                preceding: preceding.clone(),
            });
        }
        Ok(Page {
            file: file.to_owned(),
            blocks,
        })
    }

    /// The lines of the blocks that are neither run nor marked as not run.
    pub fn unmarked(&self) -> Vec<usize> {
        self.blocks
            .iter()
            .filter(|b| b.marker == Marker::None)
            .map(|b| b.line)
            .collect()
    }
}

/// The info string of a fence line (```` ```console ````), or `None`. A closing fence has
/// an empty one.
fn fence(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix("```")?;
    Some(rest.trim())
}

/// The marker comment that ends on the last non-blank line before line `open` (0-based).
fn marker_before(lines: &[&str], open: usize) -> Result<Marker, String> {
    let Some(end) = (0..open).rev().find(|&j| !lines[j].trim().is_empty()) else {
        return Ok(Marker::None);
    };
    if !lines[end].trim_end().ends_with("-->") {
        return Ok(Marker::None);
    }
    let start = (0..=end)
        .rev()
        .find(|&j| lines[j].contains("<!--"))
        .ok_or("a comment end `-->` without its start")?;
    let mut text = lines[start..=end].join("\n");
    text = text
        .split_once("<!--")
        .map(|(_, t)| t.to_owned())
        .unwrap_or_default();
    if let Some(t) = text.rsplit_once("-->") {
        text = t.0.to_owned();
    }
    let text = text.trim();
    if let Some(reason) = text.strip_prefix("not-run:") {
        let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
        if reason.is_empty() {
            return Err("`not-run:` needs a reason".into());
        }
        return Ok(Marker::NotRun(reason));
    }
    if text == "not-run" {
        return Err("`not-run:` needs a reason".into());
    }
    let Some(rest) = text.strip_prefix("doc-test") else {
        return Ok(Marker::None);
    };
    let mut rest_lines = rest.lines();
    let first = rest_lines.next().unwrap_or("").trim();
    let name = match first.strip_prefix(':') {
        Some(n) if !n.trim().is_empty() => Some(n.trim().to_owned()),
        Some(_) => None,
        None if first.is_empty() => None,
        None => return Err(format!("`doc-test` then `{first}`: write `doc-test: NAME`")),
    };
    let mut directives = Vec::new();
    for line in rest_lines {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        directives.push(directive(line)?);
    }
    Ok(Marker::Run { name, directives })
}

fn directive(line: &str) -> Result<Directive, String> {
    if line == "background" {
        return Ok(Directive::Background);
    }
    let (key, value) = line
        .split_once(':')
        .ok_or_else(|| format!("unknown doc-test directive `{line}`"))?;
    let value = value.trim();
    if value.is_empty() {
        return Err(format!("`{key}:` needs a value"));
    }
    match key.trim() {
        "setup" => Ok(Directive::Setup(value.to_owned())),
        "wait" => Ok(Directive::Wait(value.to_owned())),
        "file" => Ok(Directive::File(value.to_owned())),
        "agent" => {
            let words: Vec<&str> = value.split_whitespace().collect();
            match words[..] {
                [name, env] => Ok(Directive::Agent {
                    name: name.into(),
                    env: env.into(),
                    profile: None,
                }),
                [name, env, profile] => Ok(Directive::Agent {
                    name: name.into(),
                    env: env.into(),
                    profile: Some(profile.into()),
                }),
                _ => Err(format!("`agent: NAME ENV [PROFILE]`, not `agent: {value}`")),
            }
        }
        other => Err(format!("unknown doc-test directive `{other}:`")),
    }
}

type StepResult = Result<Vec<Step>, (usize, String)>;

fn console_steps(body: &[(usize, &str)]) -> StepResult {
    let mut steps: Vec<Step> = Vec::new();
    let mut k = 0;
    while k < body.len() {
        let (n, line) = body[k];
        k += 1;
        if let Some(cmd) = line.strip_prefix("$ ") {
            let mut command = cmd.to_owned();
            if let Some(term) = heredoc_terminator(cmd) {
                loop {
                    let Some(&(_, l)) = body.get(k) else {
                        return Err((n, format!("the here-document never ends with `{term}`")));
                    };
                    k += 1;
                    command.push('\n');
                    command.push_str(l);
                    if l.trim() == term {
                        break;
                    }
                }
            }
            steps.push(Step {
                line: n,
                command,
                expected: Some(Vec::new()),
            });
        } else if let Some(step) = steps.last_mut() {
            if let Some(expected) = step.expected.as_mut() {
                expected.push((n, line.to_owned()));
            }
        } else if !line.trim().is_empty() {
            // Output before any command: a fragment, fine for a block that is not run.
            return Ok(Vec::new());
        }
    }
    Ok(steps)
}

fn sh_steps(body: &[(usize, &str)]) -> StepResult {
    Ok(body
        .iter()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|&(n, l)| Step {
            line: n,
            command: l.trim().to_owned(),
            expected: None,
        })
        .collect())
}

/// The terminator of a here-document the command starts (`<<'EOF'`, `<<EOF`, `<<-EOF`).
fn heredoc_terminator(cmd: &str) -> Option<String> {
    let (_, rest) = cmd.split_once("<<")?;
    let rest = rest.trim_start_matches('-').trim_start();
    let word: String = rest
        .trim_start_matches(['\'', '"'])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then_some(word)
}

/// What a command in a page is run as: `cargo run --release --bin X --` (the README's
/// form) becomes the built binary `X`, found on the `PATH` the test sets.
pub fn command_to_run(command: &str) -> String {
    let mut out = command.to_owned();
    for bin in ["skerry-edge", "skerry"] {
        for profile in ["--release ", ""] {
            out = out.replace(&format!("cargo run {profile}--bin {bin} --"), bin);
        }
    }
    out
}

/// The kinds of variable parts, in the order they are tried at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Time,
    Uuid,
    Hex,
    Port,
    Duration,
}

impl Kind {
    fn placeholder(self) -> &'static str {
        match self {
            Kind::Time => "<time>",
            Kind::Uuid => "<uuid>",
            Kind::Hex => "<hex>",
            Kind::Port => "<port>",
            Kind::Duration => "<dur>",
        }
    }
}

/// A variable part of a line: its byte range and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The variable parts of `line`, left to right, not overlapping.
pub fn spans(line: &str) -> Vec<Span> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut prev: Option<char> = None;
    while i < line.len() {
        let rest = &line[i..];
        let Some(c) = rest.chars().next() else { break };
        if !prev.is_some_and(is_word) {
            let found = [
                (Kind::Time, time_len(rest)),
                (Kind::Uuid, uuid_len(rest)),
                (Kind::Hex, hex_len(rest)),
                (Kind::Port, port_len(&line[..i], rest)),
                (Kind::Duration, duration_len(rest)),
            ]
            .into_iter()
            .find_map(|(kind, len)| len.map(|len| (kind, len)));
            if let Some((kind, len)) = found {
                out.push(Span {
                    start: i,
                    end: i + len,
                    kind,
                });
                prev = line[..i + len].chars().next_back();
                i += len;
                continue;
            }
        }
        prev = Some(c);
        i += c.len_utf8();
    }
    out
}

/// Whether the text after a candidate ends it (not inside a word).
fn ends_word(rest: &str) -> bool {
    !rest.chars().next().is_some_and(is_word)
}

fn digits(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

fn time_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if b.len() < shape.len() {
        return None;
    }
    for (x, want) in b.iter().zip(shape) {
        let ok = if *want == b'd' {
            x.is_ascii_digit()
        } else {
            x == want
        };
        if !ok {
            return None;
        }
    }
    let mut n = shape.len();
    if b.get(n) == Some(&b'.') && b.get(n + 1).is_some_and(u8::is_ascii_digit) {
        n += 1 + digits(&s[n + 1..]);
    }
    if b.get(n) == Some(&b'Z') {
        n += 1;
    } else if matches!(b.get(n), Some(b'+' | b'-'))
        && s.len() >= n + 6
        && digits(&s[n + 1..n + 3]) == 2
        && b[n + 3] == b':'
        && digits(&s[n + 4..n + 6]) == 2
    {
        n += 6;
    }
    ends_word(&s[n..]).then_some(n)
}

fn uuid_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let groups = [8, 4, 4, 4, 12];
    let mut n = 0;
    for (g, len) in groups.iter().enumerate() {
        if g > 0 {
            if b.get(n) != Some(&b'-') {
                return None;
            }
            n += 1;
        }
        let run = b[n.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
        if run != *len {
            return None;
        }
        n += len;
    }
    ends_word(&s[n..]).then_some(n)
}

fn hex_len(s: &str) -> Option<usize> {
    let run = s
        .bytes()
        .take_while(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        .count();
    let has_letter = s[..run].bytes().any(|c| c.is_ascii_alphabetic());
    if run < 8 || (!has_letter && run < 12) {
        return None;
    }
    let mut n = run;
    if s[n..].starts_with('…') {
        n += '…'.len_utf8();
    }
    ends_word(&s[n..]).then_some(n)
}

fn port_len(before: &str, s: &str) -> Option<usize> {
    let hosts = ["127.0.0.1:", "0.0.0.0:", "localhost:", "[::]:"];
    if !hosts.iter().any(|h| before.ends_with(h)) {
        return None;
    }
    let n = digits(s);
    (n > 0 && ends_word(&s[n..])).then_some(n)
}

fn duration_len(s: &str) -> Option<usize> {
    let mut n = digits(s);
    if n == 0 {
        return None;
    }
    if s[n..].starts_with('.') && digits(&s[n + 1..]) > 0 {
        n += 1 + digits(&s[n + 1..]);
    }
    let rest = &s[n..];
    for unit in ["ns", "µs", "us", "ms", "s"] {
        if rest.starts_with(unit) && ends_word(&rest[unit.len()..]) {
            return Some(n + unit.len());
        }
    }
    for unit in [
        " seconds", " second", " minutes", " minute", " hours", " hour",
    ] {
        if rest.starts_with(unit) && ends_word(&rest[unit.len()..]) {
            return Some(n + unit.len());
        }
    }
    None
}

/// Replaces whole words (delimited by anything but letters, digits, `_` and `-`).
fn replace_word(line: &str, word: &str, with: &str) -> String {
    if word.is_empty() {
        return line.to_owned();
    }
    let is_name = |c: char| is_word(c) || c == '-';
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    let mut prev: Option<char> = None;
    while let Some(pos) = rest.find(word) {
        let before = rest[..pos].chars().next_back().or(prev);
        let after = rest[pos + word.len()..].chars().next();
        out.push_str(&rest[..pos]);
        if before.is_some_and(is_name) || after.is_some_and(is_name) {
            out.push_str(word);
        } else {
            out.push_str(with);
        }
        prev = word.chars().next_back();
        rest = &rest[pos + word.len()..];
    }
    out.push_str(rest);
    out
}

/// How lines are masked before they are compared (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Masks {
    /// The local node's name as the page shows it (`vm`).
    pub page_host: Option<String>,
    /// The local node's name as the program prints it.
    pub actual_host: Option<String>,
    /// Literal replacements made first on the program's side: (what it prints, what the
    /// page shows), such as the scratch directory.
    pub actual_literal: Vec<(String, String)>,
}

/// Which side a line comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Page,
    Actual,
}

impl Masks {
    /// `line` masked and with its whitespace normalised.
    pub fn line(&self, side: Side, line: &str) -> String {
        let mut line = line.to_owned();
        if side == Side::Actual {
            for (from, to) in &self.actual_literal {
                if !from.is_empty() {
                    line = line.replace(from.as_str(), to);
                }
            }
        }
        let host = match side {
            Side::Page => &self.page_host,
            Side::Actual => &self.actual_host,
        };
        let mut masked = String::with_capacity(line.len());
        let mut at = 0;
        for span in spans(&line) {
            masked.push_str(&line[at..span.start]);
            masked.push_str(span.kind.placeholder());
            at = span.end;
        }
        masked.push_str(&line[at..]);
        if let Some(host) = host {
            masked = replace_word(&masked, host, "<host>");
        }
        masked.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// Whether a page line (masked) matches a line of the program's (masked): the same, or,
/// for a page line that ends in ` ...`, one that begins with what comes before it (the
/// rest of the line is a message of another program's, such as the Docker engine's).
pub fn line_matches(expected: &str, actual: &str) -> bool {
    match expected.strip_suffix(" ...") {
        Some(prefix) => actual.starts_with(prefix) && actual.len() > prefix.len(),
        None => expected == actual,
    }
}

/// Whether `expected` (page lines, masked, `...` a wildcard) matches `actual` (masked)
/// entirely, and if so which actual line each expected line (not a wildcard) stands for.
pub fn align(expected: &[String], actual: &[String]) -> Option<Vec<(usize, usize)>> {
    let (n, m) = (expected.len(), actual.len());
    // ok[i][j]: expected[i..] matches actual[j..].
    let mut ok = vec![vec![false; m + 1]; n + 1];
    ok[n][m] = true;
    for i in (0..n).rev() {
        for j in (0..=m).rev() {
            ok[i][j] = if expected[i] == ELLIPSIS {
                ok[i + 1][j] || (j < m && ok[i][j + 1])
            } else {
                j < m && line_matches(&expected[i], &actual[j]) && ok[i + 1][j + 1]
            };
        }
    }
    if !ok[0][0] {
        return None;
    }
    let mut pairs = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n {
        if expected[i] == ELLIPSIS {
            if ok[i + 1][j] {
                i += 1;
            } else {
                j += 1;
            }
        } else {
            pairs.push((i, j));
            i += 1;
            j += 1;
        }
    }
    Some(pairs)
}

/// A readable account of a mismatch: the page's lines with their numbers, the program's,
/// both masked, and the first line that differs.
pub fn diff(file: &str, expected: &[(usize, String)], actual: &[String]) -> String {
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    let mut first = None;
    while i < expected.len() {
        let e = &expected[i].1;
        if e == ELLIPSIS {
            // Skip to the next line the page shows after the wildcard.
            match expected.get(i + 1) {
                Some((_, next)) => {
                    while j < actual.len() && !line_matches(next, &actual[j]) {
                        j += 1;
                    }
                }
                None => j = actual.len(),
            }
            i += 1;
            continue;
        }
        if !actual.get(j).is_some_and(|a| line_matches(e, a)) {
            first = Some((expected[i].0, e.clone(), actual.get(j).cloned()));
            break;
        }
        i += 1;
        j += 1;
    }
    match first {
        Some((line, e, a)) => {
            let _ = writeln!(out, "first difference at {file}:{line}:");
            let _ = writeln!(out, "  page:    {e}");
            let _ = writeln!(
                out,
                "  program: {}",
                a.as_deref().unwrap_or("(no more lines)")
            );
        }
        None if j < actual.len() => {
            let _ = writeln!(out, "the program printed more lines than {file} shows:");
            let _ = writeln!(out, "  program: {}", actual[j]);
        }
        None => {}
    }
    let _ = writeln!(out, "--- {file} (masked)");
    for (n, l) in expected {
        let _ = writeln!(out, "{n:>5} | {l}");
    }
    let _ = writeln!(out, "--- the program's output (masked)");
    for l in actual {
        let _ = writeln!(out, "      | {l}");
    }
    out
}

/// Values the page shows that the program printed otherwise, learnt from matching lines
/// and replaced in later commands.
#[derive(Debug, Clone, Default)]
pub struct Bindings {
    map: BTreeMap<String, String>,
}

impl Bindings {
    /// Binds `page` to `actual` (a seeded value, such as the page's API address).
    pub fn bind(&mut self, page: &str, actual: &str) {
        if page != actual && !page.is_empty() {
            self.map.insert(page.to_owned(), actual.to_owned());
        }
    }

    /// The value bound to `page`, if any.
    pub fn get(&self, page: &str) -> Option<&str> {
        self.map.get(page).map(String::as_str)
    }

    /// Learns from a page line and the program's line that matched it: each uuid, hex
    /// value and port in the same position, and each whole word that holds a uuid or hex
    /// value (a token).
    pub fn learn(&mut self, page: &str, actual: &str) {
        let keep = |s: &Span| matches!(s.kind, Kind::Uuid | Kind::Hex);
        let carried = |s: &Span| keep(s) || s.kind == Kind::Port;
        let ps: Vec<Span> = spans(page).into_iter().filter(carried).collect();
        let acts: Vec<Span> = spans(actual).into_iter().filter(carried).collect();
        if ps.len() == acts.len() {
            for (p, a) in ps.iter().zip(&acts) {
                let pv = page[p.start..p.end].trim_end_matches('…');
                let av = actual[a.start..a.end].trim_end_matches('…');
                // A value the page shortens is learnt only if the program's is shortened too.
                if page[p.start..p.end].ends_with('…') == actual[a.start..a.end].ends_with('…')
                {
                    self.bind(pv, av);
                }
            }
        }
        let pw: Vec<&str> = page.split_whitespace().collect();
        let aw: Vec<&str> = actual.split_whitespace().collect();
        if pw.len() == aw.len() {
            for (p, a) in pw.iter().zip(&aw) {
                let holds = spans(p).iter().any(keep);
                if holds && !p.ends_with('…') {
                    self.bind(p, a);
                }
            }
        }
    }

    /// `command` with every value learnt replaced, longest first; a word that ends in `…`
    /// is replaced by the whole value of the longest learnt page value it begins.
    pub fn apply(&self, command: &str) -> String {
        let mut out = String::with_capacity(command.len());
        for piece in command.split_inclusive(char::is_whitespace) {
            let word = piece.trim_end();
            let space = &piece[word.len()..];
            if let Some(prefix) = word.strip_suffix('…') {
                // The shortened word may start with a quote or an option (`--token=`).
                let start = prefix
                    .char_indices()
                    .find(|&(i, _)| self.map.keys().any(|key| key.starts_with(&prefix[i..])))
                    .map(|(i, _)| i);
                if let Some(i) = start {
                    let key = self
                        .map
                        .keys()
                        .filter(|key| key.starts_with(&prefix[i..]))
                        .max_by_key(|key| key.len());
                    if let Some(key) = key {
                        out.push_str(&prefix[..i]);
                        out.push_str(&self.map[key]);
                        out.push_str(space);
                        continue;
                    }
                }
            }
            out.push_str(piece);
        }
        let mut keys: Vec<&String> = self.map.keys().collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.len()));
        // Replace through placeholders, so a value is never replaced inside another's.
        let mut slots = Vec::new();
        for key in keys {
            if out.contains(key.as_str()) {
                let slot = format!("\u{0}{}\u{0}", slots.len());
                out = out.replace(key.as_str(), &slot);
                slots.push((slot, self.map[key].clone()));
            }
        }
        for (slot, value) in slots {
            out = out.replace(&slot, &value);
        }
        out
    }
}

/// Counts of a run, printed at the end: blocks run, blocks not run (with reasons).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub run: usize,
    pub commands: usize,
    pub not_run: Vec<(String, usize, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masks() -> Masks {
        Masks {
            page_host: Some("vm".into()),
            actual_host: Some("build-7".into()),
            actual_literal: vec![("/tmp/.tmpXYZ".into(), "/tmp/docs2".into())],
        }
    }

    #[test]
    fn blocks_are_found_with_their_markers_and_steps() {
        let page = "\
# Title

<!-- doc-test: env -->
```console
$ skerry env create plant-a
created environment plant-a
$ skerry env list
NAME  LABELS
...
```

<!-- not-run: needs a registry -->

```console
$ docker pull x
```

```sh
cargo run --release --bin skerry -- serve
```

```
not an example
```
";
        let p = Page::parse("t.md", page).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.blocks.len(), 3);
        let b = &p.blocks[0];
        assert_eq!(b.line, 4);
        assert_eq!(
            b.marker,
            Marker::Run {
                name: Some("env".into()),
                directives: vec![]
            }
        );
        assert_eq!(b.steps.len(), 2);
        assert_eq!(b.steps[0].line, 5);
        assert_eq!(
            b.steps[0].expected,
            Some(vec![(6, "created environment plant-a".into())])
        );
        assert_eq!(
            b.steps[1].expected,
            Some(vec![(8, "NAME  LABELS".into()), (9, "...".into())])
        );
        assert_eq!(
            p.blocks[1].marker,
            Marker::NotRun("needs a registry".into())
        );
        assert_eq!(p.blocks[2].marker, Marker::None);
        assert_eq!(p.blocks[2].steps[0].expected, None);
        assert_eq!(p.unmarked(), vec![18]);
    }

    #[test]
    fn directives_heredocs_and_bad_markers() {
        let page = "\
<!-- doc-test: demo
setup: skerry env create plant-b
agent: gw-2 plant-b raspberry-pi-4
wait: skerry status | grep -q Healthy
-->
```console
$ cat > f <<'EOF'
a
EOF
$ cat f
a
```
";
        let p = Page::parse("t.md", page).unwrap_or_else(|e| panic!("{e}"));
        let Marker::Run { directives, .. } = &p.blocks[0].marker else {
            panic!("not a run marker")
        };
        assert_eq!(
            directives,
            &vec![
                Directive::Setup("skerry env create plant-b".into()),
                Directive::Agent {
                    name: "gw-2".into(),
                    env: "plant-b".into(),
                    profile: Some("raspberry-pi-4".into())
                },
                Directive::Wait("skerry status | grep -q Healthy".into()),
            ]
        );
        assert_eq!(p.blocks[0].steps[0].command, "cat > f <<'EOF'\na\nEOF");
        let p2 = Page::parse(
            "t.md",
            "```yaml\napp: demo\n```\n<!-- doc-test\nfile: demo.yaml\n-->\n```console\n$ cat demo.yaml\napp: demo\n```\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p2.blocks[0].preceding.as_deref(), Some("app: demo\n"));
        let e = Page::parse("t.md", "<!-- doc-test\nfile: x\n-->\n```sh\nx\n```\n").unwrap_err();
        assert!(e.message.contains("file:"), "{e}");
        assert_eq!(p.blocks[0].steps[1].expected, Some(vec![(11, "a".into())]));

        let e = Page::parse("t.md", "<!-- not-run: -->\n```sh\nx\n```\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("reason"), "{e}");
        let e =
            Page::parse("t.md", "<!-- doc-test\nfrobnicate: x\n-->\n```sh\nx\n```\n").unwrap_err();
        assert!(e.message.contains("frobnicate"), "{e}");
        let e =
            Page::parse("t.md", "<!-- doc-test\nbackground\n-->\n```sh\nx\ny\n```\n").unwrap_err();
        assert!(e.message.contains("exactly one"), "{e}");
        let e = Page::parse("t.md", "```console\n$ x\n").unwrap_err();
        assert!(e.message.contains("never closed"), "{e}");
    }

    #[test]
    fn the_readme_form_of_a_command_runs_the_built_binary() {
        assert_eq!(
            command_to_run("cargo run --release --bin skerry -- env create plant-a"),
            "skerry env create plant-a"
        );
        assert_eq!(
            command_to_run("cargo run --release --bin skerry-edge -- run --data d"),
            "skerry-edge run --data d"
        );
    }

    #[test]
    fn variable_parts_are_masked() {
        let m = masks();
        let page = "gw-1   c66a7b68-a606-458e-8baa-e12a285f2410   Normal   127.0.0.1   0     2026-11-22T03:06:23.127Z";
        let actual =
            "gw-1 0f6a7b68-a606-458e-8baa-e12a285f2411 Normal 127.0.0.1 0 2026-12-06T20:01:02.5Z";
        assert_eq!(m.line(Side::Page, page), m.line(Side::Actual, actual));
        assert_eq!(
            m.line(Side::Page, page),
            "gw-1 <uuid> Normal 127.0.0.1 0 <time>"
        );
        assert_eq!(
            m.line(Side::Page, "published weather@1.0.0 (digest f7b724736ffc…)"),
            "published weather@1.0.0 (digest <hex>)"
        );
        assert_eq!(
            m.line(Side::Page, "skr1.003d3e0474ff403bb7388849d26814ab.e7f3b6"),
            "skr1.<hex>.e7f3b6"
        );
        assert_eq!(
            m.line(Side::Page, "endpoint=127.0.0.1:7883 api=http://0.0.0.0:80/"),
            "endpoint=127.0.0.1:<port> api=http://0.0.0.0:<port>/"
        );
        assert_eq!(
            m.line(Side::Page, "took 1.25s, then 30ms; Up 6 seconds"),
            "took <dur>, then <dur>; Up <dur>"
        );
        // Words and numbers that only look like parts are left alone.
        assert_eq!(
            m.line(Side::Page, "seq 12345678 defaced weather-a 8080 ab12cd34ef"),
            "seq 12345678 defaced weather-a 8080 <hex>"
        );
        assert_eq!(
            m.line(Side::Page, "x-c66a7b68.demo-1 10.0.0.5:443"),
            "x-<hex>.demo-1 10.0.0.5:443"
        );
        // The host's name on either side, as a whole word only.
        assert_eq!(m.line(Side::Page, "vm   local  vmx"), "<host> local vmx");
        assert_eq!(m.line(Side::Actual, "build-7 local"), "<host> local");
        assert_eq!(
            m.line(Side::Actual, "dir=/tmp/.tmpXYZ/edge/identity"),
            "dir=/tmp/docs2/edge/identity"
        );
        assert_eq!(
            m.line(Side::Page, "at 2026-11-22T03:06:23+01:00."),
            "at <time>."
        );
    }

    #[test]
    fn wildcards_align_and_mismatches_are_shown_with_the_page_line() {
        let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let exp = s(&["a", "...", "d"]);
        assert_eq!(
            align(&exp, &s(&["a", "b", "c", "d"])),
            Some(vec![(0, 0), (2, 3)])
        );
        assert_eq!(align(&exp, &s(&["a", "d"])), Some(vec![(0, 0), (2, 1)]));
        assert_eq!(align(&exp, &s(&["a", "b"])), None);
        assert_eq!(align(&s(&["a"]), &s(&["a", "b"])), None);
        assert!(align(&s(&["a", "..."]), &s(&["a", "b"])).is_some());
        assert!(align(&s(&["pulled: ..."]), &s(&["pulled: no such host"])).is_some());
        assert!(align(&s(&["pulled: ..."]), &s(&["pulled:"])).is_none());
        assert!(align(&s(&["pulled: ..."]), &s(&["failed: no such host"])).is_none());
        let expected = vec![(10, "a".to_owned()), (11, "b".to_owned())];
        let d = diff("docs/cli.md", &expected, &s(&["a", "c"]));
        assert!(d.contains("first difference at docs/cli.md:11:"), "{d}");
        assert!(d.contains("page:    b") && d.contains("program: c"), "{d}");
        let d = diff("docs/cli.md", &expected, &s(&["a", "b", "extra"]));
        assert!(d.contains("more lines"), "{d}");
    }

    #[test]
    fn values_carry_into_later_commands() {
        let mut b = Bindings::default();
        b.bind("127.0.0.1:8080", "127.0.0.1:40001");
        b.learn(
            "skr1.003d3e0474ff403bb7388849d26814ab.e7f3b62150e41dcc765814bc371aaf763f0099efe5e25c744cb245c5e59ededb.3826a9d5",
            "skr1.aaaa3e0474ff403bb7388849d26814ab.f7f3b62150e41dcc765814bc371aaf763f0099efe5e25c744cb245c5e59ededb.4826a9d5",
        );
        assert_eq!(
            b.apply("skerry-edge run --cloud http://127.0.0.1:8080 --token skr1.003d3e04…"),
            "skerry-edge run --cloud http://127.0.0.1:40001 --token skr1.aaaa3e0474ff403bb7388849d26814ab.f7f3b62150e41dcc765814bc371aaf763f0099efe5e25c744cb245c5e59ededb.4826a9d5"
        );
        b.learn(
            "node gw-1 (c66a7b68-a606-458e-8baa-e12a285f2410)",
            "node gw-1 (11111111-a606-458e-8baa-e12a285f2410)",
        );
        assert_eq!(
            b.apply("skerry node show c66a7b68-a606-458e-8baa-e12a285f2410"),
            "skerry node show 11111111-a606-458e-8baa-e12a285f2410"
        );
        // Nothing learnt from lines whose parts do not pair up.
        let before = b.clone().map.len();
        b.learn("a 0123456789abcdef", "a");
        assert_eq!(b.map.len(), before);
        assert_eq!(b.apply("echo unrelated"), "echo unrelated");
    }
}
