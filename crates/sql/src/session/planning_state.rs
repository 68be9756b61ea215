//! The DataFusion state each statement plans and runs with, copied once.
//!
//! DataFusion hands out its session state by value: `SessionContext::state`
//! clones the whole `SessionState` — every registered function, by name, in
//! hash maps of a few hundred entries — and `task_ctx` copies those maps
//! again. A session asked for both per statement, several times on the
//! general path; on sysbench's read-only transactions that copying (and
//! freeing) was about a twelfth of the server's CPU.
//!
//! The state only changes after a session has started in one place: the
//! time zone Shoal keeps DataFusion's in step with
//! (`Session::follow_time_zone`). So a session keeps one copy behind an
//! `Arc`, with the task context made from it, and makes a new copy only
//! after that change ([`PlanningState::forget`]).
//!
//! What `SessionContext::state` does besides copying must still happen per
//! statement: it marks the start of execution, which fixes what `now()`
//! returns and gives the planner a fresh alias generator. [`PlanningState::
//! get`] does that on the kept copy in place, which it can while nothing
//! else holds the copy — statements of a session run one at a time, so the
//! previous statement's references are gone by then. If something still
//! holds one, a new copy is made: never marking a state someone else reads.

use std::sync::Arc;

use datafusion::execution::SessionState;
use datafusion::execution::TaskContext;
use datafusion::execution::context::SessionContext;
use parking_lot::Mutex;

/// A session's kept copy of its DataFusion state (module docs).
#[derive(Default)]
pub(crate) struct PlanningState {
    kept: Mutex<Option<Kept>>,
}

struct Kept {
    state: Arc<SessionState>,
    task: Arc<TaskContext>,
}

impl PlanningState {
    /// The state to plan and run one statement with, its execution marked
    /// as starting now, and the task context to run its plans in.
    pub(crate) fn get(&self, ctx: &SessionContext) -> (Arc<SessionState>, Arc<TaskContext>) {
        let mut kept = self.kept.lock();
        if let Some(k) = kept.as_mut()
            && let Some(state) = Arc::get_mut(&mut k.state)
        {
            state.mark_start_execution();
            return (k.state.clone(), k.task.clone());
        }
        let state = Arc::new(ctx.state());
        let task = state.task_ctx();
        *kept = Some(Kept {
            state: state.clone(),
            task: task.clone(),
        });
        (state, task)
    }

    /// Drops the kept copy: the context's state changed.
    pub(crate) fn forget(&self) {
        *self.kept.lock() = None;
    }
}
