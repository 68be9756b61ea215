//! Errors raised by the storage layer.
//!
//! The storage layer can fail in three ways that callers treat differently:
//! the device or engine failed (`Io`, possibly transient, never the caller's
//! fault), bytes on disk do not mean what they should (`Corrupt`, an internal
//! invariant is broken and retrying will not help), or a caller handed us a key
//! encoding we cannot parse (`InvalidKey`, a bug or bad input one layer up).
//! Engine-specific error types (RocksDB's) are flattened into strings at this
//! boundary so nothing above storage names an engine.

/// A storage-layer failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The engine or the device below it failed.
    #[error("storage I/O failure: {0}")]
    Io(String),
    /// Stored bytes violate an invariant of their format.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A key encoding could not be decoded.
    #[error("invalid key encoding: {0}")]
    InvalidKey(String),
}

/// Result alias for storage operations.
pub type Result<T> = std::result::Result<T, StorageError>;
