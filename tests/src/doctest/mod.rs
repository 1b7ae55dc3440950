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
//!
//! # Parts
//! - `parse`: a page's example blocks, their markers and directives, and the commands and
//!   output they show ([`Page::parse`]); what a command is run as ([`command_to_run`]);
//! - `mask`: the variable parts of a line and their placeholders ([`spans`], [`Masks`]);
//! - `compare`: page lines against the program's, with wildcards ([`align`],
//!   [`line_matches`]), and a readable account of a mismatch ([`diff`]);
//! - `bindings`: values carried from one command to the next ([`Bindings`]);
//! - `tests`: the parser, the masks, the comparison and the bindings on small pages.
//!
//! Running the blocks, and writing the program's output back into a page
//! (`SKERRY_BLESS_DOCS=1`), is `tests/tests/docs_examples.rs`'s.

mod bindings;
mod compare;
mod mask;
mod parse;
#[cfg(test)]
mod tests;

pub use bindings::Bindings;
pub use compare::{ELLIPSIS, align, diff, line_matches};
pub use mask::{Kind, Masks, Side, Span, spans};
pub use parse::{Block, Directive, EXAMPLE_LANGS, Marker, Page, ParseError, Step, command_to_run};

/// Counts of a run, printed at the end: blocks run, blocks not run (with reasons).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub run: usize,
    pub commands: usize,
    pub not_run: Vec<(String, usize, String)>,
}
