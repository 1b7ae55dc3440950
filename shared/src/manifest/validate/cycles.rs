//! The dependency cycles of a manifest, each reported once.

use std::collections::{BTreeMap, BTreeSet};

use super::bounds::MAX_CYCLES_REPORTED;
use super::errors::Errors;
use crate::manifest::model::Manifest;

/// Reports each cycle in `depends_on` once, at the component of the cycle that comes
/// first in the manifest, as `cycle: a -> b -> a`: the first [`MAX_CYCLES_REPORTED`] that
/// a depth-first search meets, and then that there are more. A manifest can hold many
/// long cycles (one component that depends on every other of a chain makes as many cycles
/// as the chain is long, each as long), so reporting them all would take memory and time
/// quadratic in the manifest's size.
pub(super) fn check_cycles(
    errors: &mut Errors,
    manifest: &Manifest,
    index_of: &BTreeMap<&str, usize>,
) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let n = manifest.components.len();
    // Edges to other, known components; the first of each duplicate name stands for it.
    let edges: Vec<Vec<usize>> = manifest
        .components
        .iter()
        .enumerate()
        .map(|(i, c)| {
            // Each target once, in the order written.
            let mut seen = BTreeSet::new();
            c.depends_on
                .iter()
                .filter_map(|d| index_of.get(d.as_str()).copied())
                .filter(|&j| j != i && seen.insert(j))
                .collect::<Vec<usize>>()
        })
        .collect();
    let mut marks = vec![Mark::New; n];
    let mut found: BTreeSet<Vec<usize>> = BTreeSet::new();
    let mut more = false;
    'search: for root in 0..n {
        if marks[root] != Mark::New {
            continue;
        }
        // Iterative depth-first search: (node, next edge to follow).
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        marks[root] = Mark::Open;
        while let Some(top) = stack.last_mut() {
            let (node, next) = *top;
            top.1 += 1;
            if let Some(&to) = edges[node].get(next) {
                match marks[to] {
                    Mark::New => {
                        marks[to] = Mark::Open;
                        stack.push((to, 0));
                    }
                    Mark::Open if found.len() == MAX_CYCLES_REPORTED => {
                        // Each back edge closes a cycle of its own.
                        more = true;
                        break 'search;
                    }
                    Mark::Open => {
                        let start = stack.iter().position(|&(v, _)| v == to).unwrap_or(0);
                        let mut cycle: Vec<usize> =
                            stack[start..].iter().map(|&(v, _)| v).collect();
                        // Start at the component that comes first in the manifest.
                        if let Some(min_at) = cycle
                            .iter()
                            .enumerate()
                            .min_by_key(|&(_, v)| *v)
                            .map(|(k, _)| k)
                        {
                            cycle.rotate_left(min_at);
                        }
                        found.insert(cycle);
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    for cycle in found {
        let names: Vec<&str> = cycle
            .iter()
            .chain(cycle.first())
            .map(|&v| manifest.components[v].name.as_str())
            .collect();
        errors.push(
            format!("components[{}].depends_on", cycle[0]),
            format!("cycle: {}", names.join(" -> ")),
        );
    }
    if more {
        errors.push(
            "components",
            format!("more dependency cycles than the {MAX_CYCLES_REPORTED} reported"),
        );
    }
}
