//! The variable parts of a line (times, uuids, hex values, ports, durations, the host's
//! name) and the placeholders that replace them before lines are compared.

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
