//! What the merge steps do to a KV replica (the protocol is told in
//! `shoal-replication`'s `apply/merge.rs`; the driver is `merge.rs`).
//!
//! * **Frozen.** A frozen range refuses every command that would change
//!   its data or its range-local state — commits, prepares, transaction
//!   decisions, resolutions — with [`Reply::WrongRange`]: the proposer
//!   routes again and finds the merged range once the merge has applied.
//!   GC collects nothing. Its readers are refused too (`store.rs`,
//!   `check_snapshot`): a read served after the freeze could be at a
//!   timestamp the left-hand range has not promised to stay above.
//! * **Merged.** The left-hand range takes over the right-hand range's own
//!   state, which this node holds complete up to the freeze: every
//!   range-local record (commit records, transaction records, prepare
//!   markers) is renamed under the left-hand range — where both ranges hold
//!   a copy of one record (both kept it from a split), the decided
//!   transaction record wins, else the left-hand copy; the size adds up; the
//!   last commit timestamp becomes the highest of both ranges' and of the
//!   freeze's floor, so no write the left-hand range makes on the merged
//!   keys lands below a read either range served; the GC threshold is the
//!   higher of both, published before the merged keys become visible
//!   under the left-hand range.

use shoal_replication::{EntryContext, MergeOutcome, MergeStep};
use shoal_storage::{ColumnFamily, Engine, WriteBatch};

use crate::apply::{KvStateMachine, for_each_range_record};
use crate::command::{Command, Reply};
use crate::error::Result;
use crate::intents::TxnStatus;
use crate::keys;
use crate::mvcc;

/// Whether the left-hand range keeps its own record `ours` (if it has one)
/// under range-local `suffix` rather than take the right-hand range's
/// `theirs`. Both copies of a record go back to one range split in two, of
/// which only the side holding the transaction's primary key went on to
/// decide it: a decided transaction record wins over a pending one,
/// whichever side it is on, and of two pending ones the later expiry;
/// otherwise the left-hand copy stays.
fn keeps_own(suffix: &[u8], ours: Option<&[u8]>, theirs: &[u8]) -> Result<bool> {
    let Some(ours) = ours else {
        return Ok(false);
    };
    if suffix.first() == Some(&crate::intents::RECORD_KIND) {
        let mine = TxnStatus::decode(ours)?;
        let other = TxnStatus::decode(theirs)?;
        return Ok(match (mine, other) {
            // Both pending: the later expiry (a heartbeat renewed it).
            (TxnStatus::Pending { expiry: a }, TxnStatus::Pending { expiry: b }) => a >= b,
            _ => mine.is_final() || !other.is_final(),
        });
    }
    Ok(true)
}

/// The reply a frozen range gives `command` instead of running it, if it
/// may not run.
pub(crate) fn refused_while_frozen(command: &Command) -> Option<Reply> {
    match command {
        Command::Commit { .. }
        | Command::Refresh { .. }
        | Command::Prepare(_)
        | Command::Lock(_)
        | Command::EndTxn { .. }
        | Command::Resolve { .. }
        | Command::SetDescriptor(_)
        | Command::DropDescriptor { .. } => Some(Reply::WrongRange),
        Command::Gc { .. } => Some(Reply::Collected(0)),
        _ => None,
    }
}

/// The merge step `command` asks for, if it is one.
pub(crate) fn merge_request(command: &[u8]) -> Option<MergeStep> {
    match Command::decode(command).ok()? {
        Command::Freeze => Some(MergeStep::Freeze),
        Command::Merge(request) => Some(MergeStep::Merge(request)),
        _ => None,
    }
}

impl KvStateMachine {
    /// The state machine's part of a merge step (module docs), and the
    /// reply.
    pub(crate) fn merge_step(
        &mut self,
        ctx: &EntryContext<'_>,
        outcome: &MergeOutcome,
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> Result<Reply> {
        match outcome {
            MergeOutcome::Frozen { index } => {
                self.published.publish_frozen(ctx.range, true);
                Ok(Reply::Frozen(*index))
            }
            MergeOutcome::Refused(why) => Ok(Reply::MergeRefused(why.clone())),
            MergeOutcome::Merged { right, right_floor } => {
                self.take_over(ctx, *right, *right_floor, engine, batch)?;
                Ok(Reply::Merged)
            }
        }
    }

    /// Folds the state of `right` (merged away) into `ctx.range`.
    fn take_over(
        &mut self,
        ctx: &EntryContext<'_>,
        right: u64,
        right_floor: u64,
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        let left = ctx.range;
        let mut state = self.range(left, engine)?;
        let theirs = self.range(right, engine)?;
        let own_prefix = keys::range_local_prefix(left).len();
        for_each_range_record(engine, right, left, |renamed, value| {
            let suffix = &renamed[own_prefix..];
            if !keeps_own(suffix, engine.get(&renamed)?.as_deref(), &value)? {
                batch.put(renamed, value);
            }
            Ok(())
        })?;
        let prefix = keys::range_local_prefix(right);
        let end = mvcc::prefix_end(&prefix).unwrap_or_default();
        batch.delete_range_cf(ColumnFamily::Data, prefix, end);
        state.last_commit = state.last_commit.max(theirs.last_commit).max(right_floor);
        if theirs.gc_threshold > state.gc_threshold {
            state.gc_threshold = theirs.gc_threshold;
            // Before the merged keys are readable here (module docs).
            self.published.publish(left, 0, state.gc_threshold);
        }
        batch.put(keys::last_commit(left), state.last_commit.to_be_bytes());
        batch.put(keys::gc_threshold(left), state.gc_threshold.to_be_bytes());
        state.grow(left, i64::try_from(theirs.bytes).unwrap_or(i64::MAX), batch);
        self.ranges.insert(left, state);
        self.ranges.remove(&right);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_decided_transaction_record_wins_a_merge() {
        let record = [crate::intents::RECORD_KIND, 1, 2];
        let pending = TxnStatus::Pending { expiry: 5 }.encode();
        let committed = TxnStatus::Committed(9).encode();
        let aborted = TxnStatus::Aborted(3).encode();
        // Only the right-hand side has it: taken.
        assert!(!keeps_own(&record, None, &pending).unwrap());
        // The right-hand copy was decided, the left-hand one not: taken.
        assert!(!keeps_own(&record, Some(&pending), &committed).unwrap());
        // Never a pending copy over a decided one.
        assert!(keeps_own(&record, Some(&committed), &pending).unwrap());
        assert!(keeps_own(&record, Some(&aborted), &pending).unwrap());
        assert!(keeps_own(&record, Some(&pending), &pending).unwrap());
        let later = TxnStatus::Pending { expiry: 8 }.encode();
        assert!(!keeps_own(&record, Some(&pending), &later).unwrap());
        // Anything else: the left-hand copy stays.
        assert!(keeps_own(b"t1", Some(b"a"), b"b").unwrap());
    }
}
