//! How results and errors are printed: kubectl-like tables without borders (header in
//! capitals, columns three spaces apart), `key: value` details, pretty JSON, JSON lines for
//! streams, and errors on standard error (`error: MESSAGE (field: FIELD)`, or the error body
//! as JSON with `-o json`).
//!
//! Results go to standard output only; nothing else is ever written there.
//!
//! Text in table mode never carries a control character to the terminal: every cell, detail,
//! streamed column and error message goes through [`escape`], so a node or an app cannot
//! forge lines (`\r`, `ESC[2K`) or retitle the operator's terminal. JSON keeps the exact
//! text (JSON strings escape control characters themselves).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;

use clap::ValueEnum;
use comfy_table::presets::NOTHING;
use serde::Serialize;

use super::error::CliError;

/// `-o table|json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    // Aligned columns with a header row.
    Table,
    // Pretty-printed JSON (one object per line when following a stream).
    Json,
}

/// The gap between two columns.
const GAP: usize = 3;

/// Whether `c` is printed escaped in table mode: C0 controls but tab, DEL, and C1 controls
/// (U+0080 to U+009F).
fn is_escaped(c: char) -> bool {
    (c.is_control() && c != '\t') || ('\u{80}'..='\u{9f}').contains(&c)
}

/// `text` with every control character but tab escaped, for table output: `\n` and `\r`
/// for newline and carriage return, `\xHH` (the code point in two lowercase hex digits)
/// for the others (`\x1b` for ESC, `\x7f` for DEL, `\x9b` for the C1 CSI). Anything
/// else, backslashes included, is kept as it is.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if is_escaped(c) => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Like [`escape`] for text of many lines: each line is escaped, the newlines between them
/// are kept (a `\r\n` ending stays a line end).
pub fn escape_lines(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            let (body, end) = match line.strip_suffix("\r\n") {
                Some(body) => (body, "\n"),
                None => match line.strip_suffix('\n') {
                    Some(body) => (body, "\n"),
                    None => (line, ""),
                },
            };
            format!("{}{end}", escape(body))
        })
        .collect()
}

/// Writes one line to standard output.
pub fn line(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

/// Pretty-printed JSON on standard output.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Internal(format!("cannot render JSON: {e}")))?;
    line(&text)
}

/// One JSON value on one line of standard output (for streams).
pub fn json_line<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string(value)
        .map_err(|e| CliError::Internal(format!("cannot render JSON: {e}")))?;
    line(&text)
}

/// Reports an error on standard error in the chosen format.
pub fn error(err: &CliError, format: OutputFormat) {
    if err.is_silent() {
        return;
    }
    let body = err.to_body();
    let text = match format {
        OutputFormat::Json => serde_json::to_string_pretty(&body)
            .unwrap_or_else(|_| format!("error: {}", body.error.message)),
        OutputFormat::Table => match &body.error.field {
            Some(field) => format!(
                "error: {} (field: {})",
                escape(&body.error.message),
                escape(field)
            ),
            None => format!("error: {}", escape(&body.error.message)),
        },
    };
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// A table with a header row and no borders.
#[derive(Debug)]
pub struct Table {
    inner: comfy_table::Table,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        let mut inner = comfy_table::Table::new();
        inner.load_style(NOTHING).set_header(header.to_vec());
        for column in inner.column_iter_mut() {
            column.set_padding((0, GAP as u16));
        }
        Self { inner }
    }

    /// Adds a row; each cell is [`escape`]d.
    pub fn row(&mut self, cells: Vec<String>) -> &mut Self {
        self.inner.add_row(
            cells
                .iter()
                .map(|c| escape(c).into_owned())
                .collect::<Vec<_>>(),
        );
        self
    }

    /// The table as text, without trailing spaces.
    pub fn render(&self) -> String {
        self.inner.trim_fmt()
    }

    pub fn print(&self) -> Result<(), CliError> {
        line(&self.render())
    }
}

/// `key: value` lines with the values aligned, as `kubectl describe` prints them.
#[derive(Debug, Default)]
pub struct Details {
    rows: Vec<(String, String)>,
}

impl Details {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a field; the value is [`escape`]d.
    pub fn field(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        let value: String = value.into();
        self.rows
            .push((format!("{key}:"), escape(&value).into_owned()));
        self
    }

    pub fn render(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        self.rows
            .iter()
            .map(|(k, v)| format!("{k:<width$}  {v}").trim_end().to_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn print(&self) -> Result<(), CliError> {
        line(&self.render())
    }
}

/// Fixed-width columns for rows printed one at a time as they arrive (`--follow`): each
/// column but the last is padded to its width, and a longer value pushes the rest along.
#[derive(Debug)]
pub struct StreamColumns {
    widths: Vec<usize>,
}

impl StreamColumns {
    pub fn new(widths: &[usize]) -> Self {
        Self {
            widths: widths.to_vec(),
        }
    }

    /// One row; each cell is [`escape`]d.
    pub fn render(&self, cells: &[String]) -> String {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let cell = escape(cell);
            text.push_str(&cell);
            if i + 1 < cells.len() {
                let width = self.widths.get(i).copied().unwrap_or(0);
                let pad = width.saturating_sub(cell.chars().count()) + GAP;
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        text.trim_end().to_owned()
    }
}

/// `-` for an empty value.
pub fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

/// `a, b, c`, or `-` when empty.
pub fn list(items: &[String]) -> String {
    or_dash(&items.join(","))
}

/// `k=v,k2=v2`, or `-` when empty.
pub fn labels(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    list(&parts)
}

/// The first 12 characters of a digest (after any `sha256:`), then `…`.
pub fn short_digest(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    match hex.char_indices().nth(12) {
        Some((i, _)) => format!("{}…", &hex[..i]),
        None => hex.to_owned(),
    }
}

/// A JSON value as a table cell: strings bare, `null` as `-`, the rest as compact JSON.
pub fn cell(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "-".to_owned(),
        serde_json::Value::String(s) => or_dash(s),
        other => other.to_string(),
    }
}

/// A table for an answer whose shape this CLI does not know yet (an array of objects gives
/// one column per key, an object gives `key: value` lines); anything else prints as JSON.
pub fn value(value: &serde_json::Value) -> Result<(), CliError> {
    match value {
        serde_json::Value::Array(items)
            if items.iter().all(serde_json::Value::is_object) && !items.is_empty() =>
        {
            let mut keys: Vec<String> = Vec::new();
            for item in items {
                if let Some(map) = item.as_object() {
                    for k in map.keys() {
                        if !keys.contains(k) {
                            keys.push(k.clone());
                        }
                    }
                }
            }
            let header: Vec<String> = keys.iter().map(|k| k.to_uppercase()).collect();
            let header: Vec<&str> = header.iter().map(String::as_str).collect();
            let mut table = Table::new(&header);
            for item in items {
                table.row(keys.iter().map(|k| cell(&item[k.as_str()])).collect());
            }
            table.print()
        }
        serde_json::Value::Object(map) => {
            let mut details = Details::new();
            for (k, v) in map {
                details.field(k, cell(v));
            }
            details.print()
        }
        other => json(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_have_no_borders_and_no_trailing_spaces() {
        let mut t = Table::new(&["NAME", "STATUS"]);
        t.row(vec!["gw-1".into(), "Normal".into()]);
        t.row(vec!["a-much-longer-name".into(), "Abnormal".into()]);
        assert_eq!(
            t.render(),
            "NAME                 STATUS\ngw-1                 Normal\na-much-longer-name   Abnormal"
        );
        assert_eq!(Table::new(&["NAME", "X"]).render(), "NAME   X");
    }

    #[test]
    fn stream_columns_align_and_push() {
        let c = StreamColumns::new(&[4, 6]);
        assert_eq!(
            c.render(&["1".into(), "ab".into(), "x".into()]),
            "1      ab       x"
        );
        assert_eq!(
            c.render(&["12345".into(), "abcdefgh".into(), "x".into()]),
            "12345   abcdefgh   x"
        );
    }

    #[test]
    fn details_align() {
        let mut d = Details::new();
        d.field("name", "prod").field("entries", "-");
        assert_eq!(d.render(), "name:     prod\nentries:  -");
    }

    #[test]
    fn control_characters_but_tab_are_escaped() {
        assert!(matches!(
            escape("plain \\x1b text\tand tab"),
            Cow::Borrowed(_)
        ));
        assert_eq!(escape("a\rb\nc"), "a\\rb\\nc");
        assert_eq!(escape("\u{1b}[2Kforged"), "\\x1b[2Kforged");
        assert_eq!(escape("\u{1b}]0;title\u{7}"), "\\x1b]0;title\\x07");
        assert_eq!(
            escape("\0 \u{7f} \u{80} \u{9b}1m \u{9f}"),
            "\\x00 \\x7f \\x80 \\x9b1m \\x9f"
        );
        // Printable text beyond the C1 block is kept: é, ü, the euro sign, CJK.
        assert_eq!(escape("\u{a0}é ü € 日本"), "\u{a0}é ü € 日本");
        assert_eq!(escape("tab\tkept"), "tab\tkept");
        // Every C0 and C1 control but tab, and DEL, is escaped; nothing else is.
        for code in 0u32..0x2000 {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            let escaped = escape(&c.to_string()).into_owned();
            let expect = code != 0x09 && (code < 0x20 || (0x7f..=0x9f).contains(&code));
            assert_eq!(
                escaped != c.to_string(),
                expect,
                "U+{code:04X} -> {escaped:?}"
            );
            assert!(
                !escaped.chars().any(is_escaped),
                "U+{code:04X} -> {escaped:?}"
            );
        }
    }

    #[test]
    fn multi_line_text_keeps_its_line_ends() {
        assert_eq!(
            escape_lines("one\r\ntwo \u{1b}[A\nthree\rfour\n"),
            "one\ntwo \\x1b[A\nthree\\rfour\n"
        );
        assert_eq!(escape_lines("no end"), "no end");
        assert_eq!(escape_lines(""), "");
    }

    #[test]
    fn tables_details_and_streams_escape_their_cells() {
        let mut t = Table::new(&["NODE", "REASON"]);
        t.row(vec!["gw-1".into(), "exited\r\u{1b}[2Kgw-2 Healthy".into()]);
        assert_eq!(
            t.render(),
            "NODE   REASON\ngw-1   exited\\r\\x1b[2Kgw-2 Healthy"
        );
        let mut d = Details::new();
        d.field("profile", "pi\u{1b}]0;x\u{7}");
        assert_eq!(d.render(), "profile:  pi\\x1b]0;x\\x07");
        let c = StreamColumns::new(&[2, 2]);
        assert_eq!(
            c.render(&["a\nb".into(), "c".into(), "\u{9b}d".into()]),
            "a\\nb   c    \\x9bd"
        );
    }

    #[test]
    fn digests_are_shortened() {
        assert_eq!(short_digest("sha256:0123456789abcdef"), "0123456789ab…");
        assert_eq!(short_digest("abc"), "abc");
    }
}
