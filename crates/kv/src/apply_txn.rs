//! The state machine's side of a commit spanning ranges: what
//! [`Command::Prepare`](crate::command::Command::Prepare),
//! [`Command::EndTxn`](crate::command::Command::EndTxn) and
//! [`Command::Resolve`](crate::command::Command::Resolve) do to a replica.
//! Like every command, each is a function of the command and the replica's
//! data, so every replica reaches the same state (`intents.rs` has the
//! layout, `distributed.rs` the protocol).
//!
//! * **Prepare** checks the writes as a one-range commit does (first
//!   committer wins, GC threshold, no other transaction's intent), then
//!   stores them as intents at a *prepare timestamp* chosen like a commit
//!   timestamp (`max(hint, floor, last + 1)`, which becomes the range's
//!   last). Every later commit or read registration in this range is
//!   therefore ordered after it, and the transaction will commit at or
//!   above it. In the primary range it also writes the record, pending
//!   until the part's expiry (a later part of the same transaction pushes
//!   the expiry forward; `prepare.rs`). A marker per part makes a retried
//!   prepare answer the same timestamp.
//! * **EndTxn** decides the record once: commit (only a pending record —
//!   one a pusher aborted stays aborted) or abort.
//! * **FinishTxns** marks committed records finished once their
//!   coordinators resolved every intent; GC drops finished records below
//!   its threshold.
//! * **Lock** puts lock intents (`intents.rs`) on keys no other
//!   transaction holds an intent on — all of the command's keys or, if one
//!   is held, none — after creating or renewing the transaction's record
//!   in its primary range; it answers which keys changed since the
//!   locker's snapshot (`write_locks.rs`).
//! * **Resolve** turns the transaction's intents on the given keys into
//!   versions at the commit timestamp (raising the range's last commit
//!   timestamp to it), or deletes them; intents of other transactions are
//!   left alone, so resolving twice changes nothing.

use shoal_replication::EntryContext;
use shoal_storage::{ColumnFamily, Engine, StorageError, WriteBatch};

use crate::apply::{KvStateMachine, check_writes, version_bytes};
use crate::clock::Timestamp;
use crate::command::{LockRequest, Prepare, Reply};
use crate::error::Result;
use crate::intents::{Intent, LOCK_TS, Payload, TxnStatus, intent_key, prepared_key, record_key};
use crate::keys;
use crate::mvcc;

fn stored_ts(raw: &[u8]) -> Result<Timestamp> {
    let raw: [u8; 8] = raw
        .try_into()
        .map_err(|_| StorageError::Corrupt("prepare marker".to_string()))?;
    Ok(u64::from_be_bytes(raw))
}

impl KvStateMachine {
    pub(crate) fn prepare(
        &mut self,
        ctx: &EntryContext<'_>,
        p: Prepare,
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> Result<Reply> {
        let writes = p.writes;
        let range = ctx.range;
        let marker = prepared_key(range, p.txn_id, p.part);
        if let Some(raw) = engine.get(&marker)? {
            return Ok(Reply::Prepared(stored_ts(&raw)?));
        }
        if writes.iter().any(|(key, _)| !ctx.bounds.contains(key)) {
            return Ok(Reply::WrongRange);
        }
        let primary_here = ctx.bounds.contains(&p.primary_key);
        let record = record_key(range, p.txn_id);
        if primary_here
            && let Some(raw) = engine.get(&record)?
            // Pending: another part of this transaction prepared here (its
            // expiry is pushed below). Decided: aborted by a pusher.
            && TxnStatus::decode(&raw)?.is_final()
        {
            return Ok(Reply::TxnEnded(raw));
        }
        let mut state = self.range(range, engine)?;
        if let Some(refusal) =
            check_writes(&state, p.read_ts, &writes, &[p.txn_id, p.lock_id], engine)?
        {
            return Ok(refusal);
        }
        let prepare_ts = p.ts_hint.max(ctx.floor).max(state.last_commit + 1);
        for (key, value) in writes {
            let intent = Intent {
                txn_id: p.txn_id,
                primary_key: p.primary_key.clone(),
                prepare_ts,
                payload: Payload::Write(value),
            };
            batch.put(intent_key(&key), intent.encode());
        }
        batch.put(marker, prepare_ts.to_be_bytes());
        if primary_here {
            let pending = TxnStatus::Pending { expiry: p.expiry };
            batch.put(record, pending.encode());
        }
        state.last_commit = prepare_ts;
        batch.put(keys::last_commit(range), prepare_ts.to_be_bytes());
        self.ranges.insert(range, state);
        Ok(Reply::Prepared(prepare_ts))
    }

    pub(crate) fn lock(
        &mut self,
        ctx: &EntryContext<'_>,
        request: LockRequest,
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> Result<Reply> {
        let primary_here = ctx.bounds.contains(&request.primary_key);
        if request.keys.iter().any(|key| !ctx.bounds.contains(key))
            || (request.record && !primary_here)
        {
            return Ok(Reply::WrongRange);
        }
        let mut fresh = Vec::with_capacity(request.keys.len());
        let mut changed = Vec::new();
        for key in &request.keys {
            match engine.get(&intent_key(key))? {
                Some(raw) if Intent::decode(&raw)?.txn_id != request.txn_id => {
                    return Ok(Reply::IntentConflict {
                        key: key.clone(),
                        intent: raw,
                    });
                }
                Some(_) => {}
                None => fresh.push(key),
            }
            if mvcc::newest_version_ts(engine, key)?.is_some_and(|ts| ts > request.since) {
                changed.push(key.clone());
            }
        }
        if primary_here {
            let record = record_key(ctx.range, request.txn_id);
            match engine.get(&record)? {
                Some(raw) => match TxnStatus::decode(&raw)? {
                    TxnStatus::Pending { expiry } if expiry >= request.expiry => {}
                    TxnStatus::Pending { .. } => {
                        let renewed = TxnStatus::Pending {
                            expiry: request.expiry,
                        };
                        batch.put(record, renewed.encode());
                    }
                    // Aborted by a waiter that presumed the holder dead.
                    _ => return Ok(Reply::TxnEnded(raw)),
                },
                None => {
                    let pending = TxnStatus::Pending {
                        expiry: request.expiry,
                    };
                    batch.put(record, pending.encode());
                }
            }
        }
        let lock = Intent {
            txn_id: request.txn_id,
            primary_key: request.primary_key,
            prepare_ts: LOCK_TS,
            payload: Payload::Lock(request.holder),
        }
        .encode();
        for key in fresh {
            batch.put(intent_key(key), lock.clone());
        }
        Ok(Reply::Locked(changed))
    }

    pub(crate) fn end_txn(
        &mut self,
        ctx: &EntryContext<'_>,
        txn_id: u128,
        commit_ts: Option<Timestamp>,
        at: u64,
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> Result<Reply> {
        let key = record_key(ctx.range, txn_id);
        let current = engine
            .get(&key)?
            .map(|raw| TxnStatus::decode(&raw))
            .transpose()?;
        let status = match (current, commit_ts) {
            (Some(decided), _) if decided.is_final() => decided,
            // Only a pending record commits; without one the primary
            // never prepared, so the transaction cannot commit.
            (Some(TxnStatus::Pending { .. }), Some(ts)) => TxnStatus::Committed(ts),
            _ => TxnStatus::Aborted(at),
        };
        if current != Some(status) {
            batch.put(key, status.encode());
            self.decided.push(txn_id);
        }
        Ok(Reply::TxnEnded(status.encode().to_vec()))
    }

    pub(crate) fn finish_txns(
        &mut self,
        ctx: &EntryContext<'_>,
        txn_ids: &[u128],
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> Result<Reply> {
        let mut marked = 0;
        for &txn_id in txn_ids {
            let key = record_key(ctx.range, txn_id);
            let Some(raw) = engine.get(&key)? else {
                continue;
            };
            if let TxnStatus::Committed(ts) = TxnStatus::decode(&raw)? {
                batch.put(key, TxnStatus::Finished(ts).encode());
                marked += 1;
            }
        }
        Ok(Reply::Resolved(marked))
    }

    pub(crate) fn resolve(
        &mut self,
        ctx: &EntryContext<'_>,
        txn_id: u128,
        commit_ts: Option<Timestamp>,
        user_keys: Vec<Vec<u8>>,
        engine: &dyn Engine,
        batch: &mut WriteBatch,
    ) -> Result<Reply> {
        if user_keys.iter().any(|key| !ctx.bounds.contains(key)) {
            return Ok(Reply::WrongRange);
        }
        let (mut resolved, mut added) = (0, 0);
        let mut doomed = Vec::new();
        for user_key in user_keys {
            let key = intent_key(&user_key);
            let Some(raw) = engine.get(&key)? else {
                continue;
            };
            let intent = Intent::decode(&raw)?;
            if intent.txn_id != txn_id {
                continue;
            }
            if let (Some(ts), Some(value)) = (commit_ts, intent.written()) {
                added += version_bytes(&user_key, value);
                batch.put(mvcc::version_key(&user_key, ts), mvcc::encode_value(value));
            }
            doomed.push(key);
            resolved += 1;
        }
        delete_intents(doomed, engine, batch)?;
        if let Some(ts) = commit_ts {
            let mut state = self.range(ctx.range, engine)?;
            if ts > state.last_commit {
                state.last_commit = ts;
                batch.put(keys::last_commit(ctx.range), ts.to_be_bytes());
            }
            if added > 0 {
                state.grow(ctx.range, added, batch);
            }
            self.ranges.insert(ctx.range, state);
        }
        Ok(Reply::Resolved(resolved))
    }
}

/// Intents resolved together at least this many, with no other intent
/// among them, go with one range deletion instead of one tombstone each.
const RANGE_DELETE_MIN: usize = 64;

/// Deletes the intent keys `doomed`. Many of them, forming a run with no
/// other intent in it — a big transaction's part, whose keys are adjacent
/// — are removed with one range tombstone: point tombstones by the
/// million (a `COPY`'s intents) would lie in the intent span until
/// compaction, and every scan that looks for intents there (`txn.rs`,
/// `settle_intents`) would step over each of them; a reader's seek jumps
/// over a range tombstone at once. The run is checked against the
/// replica's data, which every replica holds alike: they all decide the
/// same.
fn delete_intents(
    mut doomed: Vec<Vec<u8>>,
    engine: &dyn Engine,
    batch: &mut WriteBatch,
) -> Result<()> {
    if doomed.len() >= RANGE_DELETE_MIN {
        doomed.sort();
        if let (Some(first), Some(last)) = (doomed.first(), doomed.last()) {
            let mut end = last.clone();
            end.push(0);
            let mut live = 0;
            for pair in engine.scan(first, Some(&end)) {
                pair?;
                live += 1;
                if live > doomed.len() {
                    break;
                }
            }
            if live == doomed.len() {
                batch.delete_range_cf(ColumnFamily::Data, first.clone(), end);
                return Ok(());
            }
        }
    }
    for key in doomed {
        batch.delete(key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use shoal_storage::MemoryEngine;

    use super::*;

    fn intents(engine: &MemoryEngine) -> Vec<Vec<u8>> {
        engine
            .scan(
                &[crate::intents::INTENT_PREFIX],
                Some(&[crate::intents::INTENT_PREFIX + 1]),
            )
            .map(|pair| pair.unwrap().0)
            .collect()
    }

    #[test]
    fn a_run_of_intents_goes_in_one_range_deletion_unless_another_lies_among_them() {
        let engine = MemoryEngine::new();
        let own: Vec<Vec<u8>> = (0..300u32)
            .map(|i| intent_key(format!("k{i:03}").as_bytes()))
            .collect();
        let other = intent_key(b"k050x");
        let mut batch = WriteBatch::new();
        for key in own.iter().chain([&other]) {
            batch.put(key.clone(), b"intent".to_vec());
        }
        engine.write(batch, false).unwrap();
        // Another transaction's intent among them: one tombstone each.
        let mut batch = WriteBatch::new();
        delete_intents(own[..100].to_vec(), &engine, &mut batch).unwrap();
        assert_eq!(batch.len(), 100);
        engine.write(batch, false).unwrap();
        assert_eq!(
            intents(&engine),
            [std::slice::from_ref(&other), &own[100..]].concat()
        );
        // A clean run: one range deletion.
        let mut batch = WriteBatch::new();
        delete_intents(own[100..].to_vec(), &engine, &mut batch).unwrap();
        assert_eq!(batch.len(), 1);
        engine.write(batch, false).unwrap();
        assert_eq!(intents(&engine), [other]);
        // Too few to bother: tombstones.
        let mut batch = WriteBatch::new();
        delete_intents(own[..3].to_vec(), &engine, &mut batch).unwrap();
        assert_eq!(batch.len(), 3);
    }
}
