//! A page's example blocks: fences, the marker comment before each, its directives, and
//! the commands and output a block shows.

/// The info strings of fenced blocks that are examples.
pub const EXAMPLE_LANGS: [&str; 4] = ["console", "sh", "shell", "bash"];

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
