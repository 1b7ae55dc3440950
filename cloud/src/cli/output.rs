//! How results and errors are printed: kubectl-like tables without borders (header in
//! capitals, columns three spaces apart), `key: value` details, pretty JSON, JSON lines for
//! streams, and errors on standard error (`error: MESSAGE (field: FIELD)`, or the error body
//! as JSON with `-o json`).
//!
//! Results go to standard output only; nothing else is ever written there.

use std::collections::BTreeMap;
use std::io::Write;

use comfy_table::presets::NOTHING;
use serde::Serialize;

use super::OutputFormat;
use super::client::CliError;

/// The gap between two columns.
const GAP: usize = 3;

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
            Some(field) => format!("error: {} (field: {field})", body.error.message),
            None => format!("error: {}", body.error.message),
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

    pub fn row(&mut self, cells: Vec<String>) -> &mut Self {
        self.inner.add_row(cells);
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

    pub fn field(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.rows.push((format!("{key}:"), value.into()));
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

    pub fn render(&self, cells: &[String]) -> String {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            text.push_str(cell);
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
    fn digests_are_shortened() {
        assert_eq!(short_digest("sha256:0123456789abcdef"), "0123456789ab…");
        assert_eq!(short_digest("abc"), "abc");
    }
}
