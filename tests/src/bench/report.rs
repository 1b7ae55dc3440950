//! The figures of one benchmark scenario, printed beside their baselines.

use std::fmt::Write as _;

use serde::Serialize;

/// Whether a smaller or a larger figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Lower,
    Higher,
}

/// One measured figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: String,
}

impl Figure {
    pub fn new(name: impl Into<String>, value: f64, unit: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value,
            unit: unit.into(),
        }
    }
}

/// A figure, the baseline measured beside it in the same run, and the target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub figure: Figure,
    pub baseline: Option<Figure>,
    /// `figure / baseline`, when both are in the same unit.
    pub ratio: Option<f64>,
    pub better: Better,
    /// The target in words (e.g. "<= 5 s"), and whether this run met it.
    pub target: Option<(String, bool)>,
}

/// The report of one scenario run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub scenario: String,
    /// Where and how it ran: parameters, machine facts (e.g. "nodes = 1000").
    pub setup: Vec<(String, String)>,
    pub rows: Vec<Row>,
    /// Free-form findings: what limits a missed target, what a profile showed.
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(scenario: impl Into<String>) -> Self {
        Self {
            scenario: scenario.into(),
            ..Self::default()
        }
    }

    /// Records a parameter of the run.
    pub fn setup(&mut self, key: impl Into<String>, value: impl ToString) -> &mut Self {
        self.setup.push((key.into(), value.to_string()));
        self
    }

    /// Records a figure with no baseline.
    pub fn figure(&mut self, figure: Figure, better: Better) -> &mut Row {
        self.rows.push(Row {
            figure,
            baseline: None,
            ratio: None,
            better,
            target: None,
        });
        let last = self.rows.len() - 1;
        &mut self.rows[last]
    }

    /// Records a figure beside the baseline measured in the same run.
    pub fn compare(&mut self, figure: Figure, baseline: Figure, better: Better) -> &mut Row {
        let ratio = (figure.unit == baseline.unit && baseline.value != 0.0)
            .then(|| figure.value / baseline.value);
        self.rows.push(Row {
            figure,
            baseline: Some(baseline),
            ratio,
            better,
            target: None,
        });
        let last = self.rows.len() - 1;
        &mut self.rows[last]
    }

    pub fn note(&mut self, note: impl Into<String>) -> &mut Self {
        self.notes.push(note.into());
        self
    }

    /// The report as a table, for people.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "== {} ==", self.scenario);
        for (k, v) in &self.setup {
            let _ = writeln!(out, "  {k}: {v}");
        }
        let _ = writeln!(
            out,
            "  {:<44} {:>16} {:<40} {:>8}  target",
            "figure", "value", "baseline (same run)", "ratio"
        );
        for row in &self.rows {
            let f = &row.figure;
            let baseline = row.baseline.as_ref().map_or_else(
                || "-".to_owned(),
                |b| format!("{}: {} {}", b.name, number(b.value), b.unit),
            );
            let ratio = row
                .ratio
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"));
            let target = row.target.as_ref().map_or_else(
                || "-".to_owned(),
                |(t, met)| format!("{t} ({})", if *met { "met" } else { "MISSED" }),
            );
            let _ = writeln!(
                out,
                "  {:<44} {:>16} {:<40} {:>8}  {target}",
                f.name,
                format!("{} {}", number(f.value), f.unit),
                baseline,
                ratio
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "  note: {note}");
        }
        out
    }

    /// Prints the report, as JSON (one line) when `json` is set.
    pub fn print(&self, json: bool) {
        if json {
            match serde_json::to_string(self) {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("the report does not serialize: {e}"),
            }
        } else {
            print!("{}", self.render());
        }
    }
}

impl Row {
    /// Sets the target and whether the figure met it.
    pub fn target(&mut self, target: impl Into<String>, met: bool) -> &mut Self {
        self.target = Some((target.into(), met));
        self
    }
}

/// A figure with a precision that suits its size.
fn number(v: f64) -> String {
    if (v == v.trunc() && v.abs() < 1e15) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_only_for_the_same_unit() {
        let mut r = Report::new("x");
        r.compare(
            Figure::new("a", 3.0, "s"),
            Figure::new("b", 2.0, "s"),
            Better::Lower,
        )
        .target("<= 5 s", true);
        r.compare(
            Figure::new("a", 3.0, "s"),
            Figure::new("b", 2.0, "B"),
            Better::Lower,
        );
        assert_eq!(r.rows[0].ratio, Some(1.5));
        assert_eq!(r.rows[1].ratio, None);
        let text = r.render();
        assert!(text.contains("1.50x"), "{text}");
        assert!(text.contains("<= 5 s (met)"), "{text}");
    }
}
