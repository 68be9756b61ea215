//! A tiny data-driven test runner.
//!
//! A script is plain text. Blank lines and `#` comments are kept verbatim.
//! Every other line is a command, followed by a `----` line and the expected
//! output, which ends at the next blank line (or the end of the file):
//!
//! ```text
//! # a comment
//! get t1 a
//! ----
//! a=1
//! ```
//!
//! The runner hands each command to a callback and compares what it returns
//! with the recorded output. With `UPDATE_EXPECT=1` the file is rewritten with
//! the actual output instead, so a behaviour change is reviewed as a diff.
//!
//! This crate is for tests only: a mismatch or an unreadable script panics,
//! which is how a test reports failure. Used by the storage key encoding and
//! the KV layer's MVCC scripts.

use std::path::Path;

enum Item {
    Verbatim(String),
    Case { command: String, expected: String },
}

fn parse(text: &str, path: &Path) -> Vec<Item> {
    let mut items = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim().is_empty() || line.starts_with('#') {
            items.push(Item::Verbatim(line.to_string()));
            continue;
        }
        let command = line.to_string();
        match lines.next() {
            Some("----") => {}
            other => panic!(
                "{}: expected ---- after {command:?}, got {other:?}",
                path.display()
            ),
        }
        let mut expected = Vec::new();
        for out in lines.by_ref() {
            if out.is_empty() {
                break;
            }
            expected.push(out);
        }
        items.push(Item::Case {
            command,
            expected: expected.join("\n"),
        });
    }
    items
}

/// The package directory of the running test: the one cargo names at run
/// time, else `compiled` (the `CARGO_MANIFEST_DIR` the test was built
/// with). A build cache shared between checkouts may hold a test binary
/// built in another checkout; the run-time name keeps it reading this
/// checkout's scripts.
pub fn package_dir(compiled: &str) -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(compiled))
}

/// The `*.txt` scripts in `dir`, sorted; panics if there are none (a test
/// that silently ran nothing would pass).
pub fn scripts_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no scripts in {}", dir.display());
    paths
}

/// Runs the script at `path`, calling `run` for each command in order.
pub fn run_script(path: &Path, mut run: impl FnMut(&str) -> String) {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let update = std::env::var("UPDATE_EXPECT").is_ok_and(|v| v == "1");
    let mut rewritten = String::new();
    let mut failures = Vec::new();
    for item in parse(&text, path) {
        match item {
            Item::Verbatim(line) => {
                rewritten.push_str(&line);
                rewritten.push('\n');
            }
            Item::Case { command, expected } => {
                let actual = run(&command);
                let actual = actual.trim_end();
                assert!(
                    !actual.lines().any(|l| l.trim().is_empty()),
                    "{}: output of {command:?} contains a blank line",
                    path.display()
                );
                if actual != expected {
                    failures.push(format!(
                        "{command}\n--- expected\n{expected}\n--- actual\n{actual}"
                    ));
                }
                rewritten.push_str(&format!("{command}\n----\n{actual}\n\n"));
            }
        }
    }
    if update {
        let rewritten = rewritten.trim_end().to_string() + "\n";
        std::fs::write(path, rewritten)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    } else if !failures.is_empty() {
        panic!(
            "{}: {} case(s) differ (rerun with UPDATE_EXPECT=1 to accept):\n\n{}",
            path.display(),
            failures.len(),
            failures.join("\n\n")
        );
    }
}

/// Splits a command line on whitespace, keeping `"double quoted"` spans
/// (which may contain spaces, and `\"`/`\\` escapes) together. The quotes
/// are removed.
pub fn tokenize(line: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut in_token = false;
    let mut in_quotes = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                in_token = true;
            }
            '\\' if in_quotes => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            c if c.is_whitespace() && !in_quotes => {
                if in_token {
                    tokens.push(std::mem::take(&mut current));
                    in_token = false;
                }
            }
            c => {
                current.push(c);
                in_token = true;
            }
        }
    }
    if in_token {
        tokens.push(current);
    }
    tokens
}
