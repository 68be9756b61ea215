//! The memory a node's queries may hold, together.
//!
//! DataFusion's operators that hold rows — hash aggregates and joins,
//! sorts, the build side of a cross join — reserve the memory they grow
//! into from a pool, and a reservation the pool cannot grant fails the
//! query with "resources exhausted". Left to its default, the pool is
//! unbounded and per session: one runaway query (a join whose plan went
//! wrong, a cross join of big tables) grew a node past a third of the
//! machine's memory in seconds, and other statements failed or the node
//! was killed.
//!
//! So every session of a node plans with one runtime whose pool is
//! bounded ([`runtime`]): `shoal start --query-memory`, by default a
//! quarter of the machine's memory. A query that asks for more fails with SQLSTATE 53200 (out of memory), as
//! PostgreSQL's does, and the others go on. Operators do not spill to
//! disk: the disk manager is off, so what a query holds is bounded in
//! memory and on disk alike. Memory an operator does not reserve (a batch
//! in flight between two operators) is outside the bound, but it is
//! bounded by the batch size.

use std::sync::Arc;

use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};

use crate::error::{Result, SqlError};

/// Smallest pool, whatever is asked for.
const MIN_BYTES: usize = 16 << 20;

/// The pool of each node of `shoal demo`'s throwaway cluster.
pub const DEMO_BYTES: usize = 1 << 30;

/// The runtime a node's sessions share, its pool bounded to `bytes`.
pub fn runtime(bytes: usize) -> Result<Arc<RuntimeEnv>> {
    RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(GreedyMemoryPool::new(bytes.max(MIN_BYTES))))
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()
        .map_err(|e| SqlError::Internal(format!("query runtime: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_pool_is_bounded() {
        let env = runtime(0).unwrap();
        let pool = env.memory_pool.clone();
        let reservation =
            datafusion::execution::memory_pool::MemoryConsumer::new("test").register(&pool);
        assert!(reservation.try_grow(MIN_BYTES).is_ok());
        assert!(reservation.try_grow(1).is_err());
    }
}
