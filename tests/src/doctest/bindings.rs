//! Values the page shows that the program printed otherwise (tokens, node ids, ports),
//! learnt from matching lines and carried into later commands.

use std::collections::BTreeMap;

use super::mask::{Kind, Span, spans};

/// Values the page shows that the program printed otherwise, learnt from matching lines
/// and replaced in later commands.
#[derive(Debug, Clone, Default)]
pub struct Bindings {
    pub(super) map: BTreeMap<String, String>,
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
