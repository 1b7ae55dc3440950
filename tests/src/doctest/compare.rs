//! Page lines against the program's, both masked: line by line, with `...` wildcards, and
//! a readable account of the first difference.

use std::fmt::Write as _;

/// The line that stands for any number of output lines.
pub const ELLIPSIS: &str = "...";

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
