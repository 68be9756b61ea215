//! Finding and reading test files.
//!
//! The command line names files and directories. Directories are walked recursively and
//! only files ending in `.test` (the SQLite corpus) or `.slt` (Shoal's own) are taken,
//! so READMEs and data files can sit beside the tests. Each directory's entries are
//! sorted, which makes the run order — and therefore the report — the same on every
//! machine. A file named explicitly is taken whatever its extension: the user asked.
//!
//! Files are read as bytes and decoded lossily: the corpus is ASCII, but a stray byte
//! must fail one comparison, not the whole file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

fn is_test_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("test" | "slt")
    )
}

/// Expands `paths` into the list of test files to run, in order.
pub fn find_test_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut files)?;
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            bail!("{}: no such file or directory", path.display());
        }
    }
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading directory {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading directory {}", dir.display()))?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, files)?;
        } else if is_test_file(&path) {
            files.push(path);
        }
    }
    Ok(())
}

pub fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
