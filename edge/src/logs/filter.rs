//! Which files of a shared directory a log source reads.
//!
//! Several replicas can write to one directory: the replicas of an `exec` component share
//! its `log_dir` (a host path), so may other `exec` components that name the same path,
//! and every `exec` replica without a `log_dir` writes its output to the process
//! runtime's own output directory. Each of them is read by its own source, and each file
//! must be read by exactly one. A file belongs to the first source (in the sources' order)
//! whose prefix starts its path in the directory: an `exec` replica's prefix is
//! `{component}-{replica}.`, the name of the output files the agent writes for it there.
//! A file that no prefix claims belongs to the first source, when the sources agreed that
//! one takes the rest (`NameFilter::rest`), else to none.

/// What one source of a shared directory reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameFilter {
    /// Every source's prefix, in order.
    prefixes: Vec<String>,
    /// Which of them is this source's.
    me: usize,
    /// Whether files that no prefix claims go to the first source.
    rest: bool,
}

impl NameFilter {
    /// Source `me` of the sources whose prefixes are `prefixes` (in order); `rest`: the
    /// files no prefix claims go to source 0.
    pub fn new(prefixes: Vec<String>, me: usize, rest: bool) -> Self {
        Self { prefixes, me, rest }
    }

    /// Whether the file at `path` (relative to the directory) is this source's.
    pub fn takes(&self, path: &str) -> bool {
        match self.prefixes.iter().position(|p| path.starts_with(p)) {
            Some(owner) => owner == self.me,
            None => self.rest && self.me == 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_one_owner() {
        let prefixes: Vec<String> = ["alpha-0.", "alpha-1.", "beta-0."]
            .into_iter()
            .map(String::from)
            .collect();
        let filters: Vec<NameFilter> = (0..3)
            .map(|i| NameFilter::new(prefixes.clone(), i, true))
            .collect();
        let owners =
            |name: &str| -> Vec<usize> { (0..3).filter(|&i| filters[i].takes(name)).collect() };
        assert_eq!(owners("alpha-0.stdout.log"), [0]);
        assert_eq!(owners("alpha-1.stderr.log"), [1]);
        assert_eq!(
            owners("alpha-10.stdout.log"),
            [0],
            "not alpha-1's: the rest"
        );
        assert_eq!(owners("beta-0.stdout.log"), [2]);
        assert_eq!(owners("app.log"), [0]);
        assert_eq!(owners("sub/beta-0.log"), [0]);
        let none = NameFilter::new(prefixes, 1, false);
        assert!(!none.takes("app.log"));
        assert!(!NameFilter::new(vec!["x.".into()], 0, false).takes("y.log"));
    }
}
