//! `--cache` and `--query-memory`: how much memory the store's block
//! cache, and the node's queries together (`shoal_sql::query_memory`),
//! may hold.
//!
//! A size is a percentage of the machine's physical memory (`25%`, the
//! default, as CockroachDB recommends for its `--cache`) or a number of
//! bytes with an optional binary suffix (`512MiB`, `2GiB`, `1048576`). The
//! cache fills as blocks are read, so the size is a bound, not an
//! allocation: point reads stay flat as a table grows only while its hot
//! blocks fit.

use anyhow::{Context, bail};

/// The default `--cache`.
pub const DEFAULT_CACHE: &str = "25%";

/// Physical memory assumed where it cannot be read.
const FALLBACK_MEMORY: u64 = 4 << 30;

/// The smallest cache or query memory accepted.
const MIN_CACHE: u64 = 16 << 20;

/// The default `--query-memory`.
pub const DEFAULT_QUERY_MEMORY: &str = "25%";

/// The bytes `text`, given to `flag`, asks for, with `memory` bytes of
/// physical memory.
pub fn parse(flag: &str, text: &str, memory: u64) -> anyhow::Result<usize> {
    let text = text.trim();
    let bytes = if let Some(percent) = text.strip_suffix('%') {
        let percent: f64 = percent
            .trim()
            .parse()
            .with_context(|| format!("{flag} {text}: not a percentage"))?;
        if !(0.0..=90.0).contains(&percent) {
            bail!("{flag} {text}: a percentage of memory must be between 0% and 90%");
        }
        (memory as f64 * percent / 100.0) as u64
    } else {
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let n: u64 = digits
            .parse()
            .with_context(|| format!("{flag} {text}: not a size"))?;
        let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kib" | "k" => 1 << 10,
            "mib" | "m" => 1 << 20,
            "gib" | "g" => 1 << 30,
            other => bail!("{flag} {text}: unknown unit {other:?} (KiB, MiB or GiB)"),
        };
        n.checked_mul(scale)
            .with_context(|| format!("{flag} {text}: too large"))?
    };
    if bytes < MIN_CACHE {
        bail!("{flag} {text}: at least {} MiB", MIN_CACHE >> 20);
    }
    usize::try_from(bytes).with_context(|| format!("{flag} {text}: too large"))
}

/// This machine's physical memory (from `/proc/meminfo`), or a modest
/// guess where it cannot be read.
pub fn physical_memory() -> u64 {
    let Ok(info) = std::fs::read_to_string("/proc/meminfo") else {
        return FALLBACK_MEMORY;
    };
    info.lines()
        .find_map(|line| {
            let kib = line.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?;
            kib.trim().parse::<u64>().ok()
        })
        .map_or(FALLBACK_MEMORY, |kib| kib << 10)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sizes_are_percentages_or_bytes() {
        let memory = 8u64 << 30;
        assert_eq!(parse("--cache", "25%", memory).unwrap(), 2 << 30);
        assert_eq!(parse("--cache", "512MiB", memory).unwrap(), 512 << 20);
        assert_eq!(parse("--cache", "2GiB", memory).unwrap(), 2 << 30);
        assert_eq!(parse("--cache", "33554432", memory).unwrap(), 32 << 20);
        assert!(parse("--cache", "95%", memory).is_err());
        assert!(parse("--cache", "1MiB", memory).is_err());
        assert!(parse("--cache", "lots", memory).is_err());
        assert!(parse("--cache", "3TB", memory).is_err());
        assert!(physical_memory() >= MIN_CACHE);
    }
}
