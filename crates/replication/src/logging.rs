//! raft-rs logs through `slog`; Shoal logs through `tracing`. This drain
//! forwards one to the other so Raft's elections and rejections show up in
//! the node's log with the range and node they belong to.
//!
//! raft-rs is chatty at info level (every term change, every vote), so its
//! info becomes `debug` here; warnings and errors keep their level.

use slog::{Drain, KV as _, Level, OwnedKVList, Record};

/// A `slog` drain that emits `tracing` events.
pub struct TracingDrain;

/// Collects slog key-values into `k=v` pairs.
struct Pairs(String);

impl slog::Serializer for Pairs {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments) -> slog::Result {
        use std::fmt::Write as _;
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut pairs = Pairs(String::new());
        let _ = record.kv().serialize(record, &mut pairs);
        let _ = values.serialize(record, &mut pairs);
        let message = record.msg();
        let fields = pairs.0;
        match record.level() {
            Level::Critical | Level::Error => tracing::error!(target: "raft", "{message}{fields}"),
            Level::Warning => tracing::warn!(target: "raft", "{message}{fields}"),
            Level::Info | Level::Debug => tracing::debug!(target: "raft", "{message}{fields}"),
            Level::Trace => tracing::trace!(target: "raft", "{message}{fields}"),
        }
        Ok(())
    }
}

/// A logger for the replica of `range` on `node`.
pub fn raft_logger(node: u64, range: u64) -> slog::Logger {
    slog::Logger::root(
        TracingDrain.fuse(),
        slog::o!("node" => node, "range" => range),
    )
}
