//! Write intents and transaction records: the stored state of a commit
//! that spans ranges (`distributed.rs` drives it).
//!
//! ```text
//! 'i' <escaped user key>                    intent: a prepared, undecided write
//! 'l' <range> 'x' <txn id u128 BE>          transaction record (primary range)
//! 'l' <range> 'p' <txn id u128 BE> <part>   "part prepared here at ts" marker
//! ```
//!
//! An **intent** holds the transaction's id, its primary key (whose range
//! keeps the transaction record), the timestamp the range gave the write
//! when it was prepared, and the value (`None`: a delete). At most one
//! intent exists per key: a second writer meets it and waits for (or
//! pushes) its transaction. Intents sort like versions, by escaped user
//! key, so a range owns the intents of its keys.
//!
//! A **lock intent** (`Payload::Lock`) holds a key for a transaction that
//! has not committed yet, without a value: a READ COMMITTED block's row
//! lock (`write_locks.rs`). Its prepare timestamp is [`LOCK_TS`], above
//! every snapshot, so readers never wait for it, while a writer meeting it
//! fails at once (`write_locks.rs`: its caller waits for the holder,
//! not the KV layer's thread). Its transaction's record
//! is written before any of its lock intents, so a lock intent without a
//! record was released. Resolving one only removes it.
//!
//! A **transaction record** says `pending` (until an expiry — a
//! coordinator that has not finished by then may be presumed dead and its
//! transaction aborted by anyone), `committed` at a timestamp, or
//! `aborted`. It changes only through the primary range's log, so the
//! decision is made once. Records and markers are range-local, so a split
//! copies them to the new range with the rest of the range-local state.

use shoal_storage::{StorageError, encode_bytes_escaped};

use crate::clock::Timestamp;
use crate::error::Result;
use crate::keys;

/// Prefix of intent keys.
pub const INTENT_PREFIX: u8 = b'i';

/// The engine key of `user_key`'s intent.
pub fn intent_key(user_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(user_key.len() + 3);
    out.push(INTENT_PREFIX);
    encode_bytes_escaped(user_key, &mut out);
    out
}

/// Engine-key bounds of the intents of user keys in `[start, end)`
/// (`end = None`: unbounded).
pub fn intent_span(start: &[u8], end: Option<&[u8]>) -> (Vec<u8>, Vec<u8>) {
    let upper = match end {
        Some(end) => intent_key(end),
        None => vec![INTENT_PREFIX + 1],
    };
    (intent_key(start), upper)
}

/// The user key of an intent key.
pub fn intent_user_key(key: &[u8]) -> Result<Vec<u8>> {
    let Some((&INTENT_PREFIX, mut rest)) = key.split_first() else {
        return Err(StorageError::Corrupt(format!("intent key {key:x?}")).into());
    };
    Ok(shoal_storage::decode_bytes_escaped(&mut rest)?)
}

/// The prepare timestamp of every lock intent: above any snapshot.
pub const LOCK_TS: Timestamp = Timestamp::MAX;

/// What an intent holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A prepared write: the value (`None`: a delete).
    Write(Option<Vec<u8>>),
    /// A lock, with its holder's tag (opaque to the KV layer: the SQL
    /// layer names the session, for deadlock detection).
    Lock(Vec<u8>),
}

/// A prepared write of a transaction spanning ranges, or a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// The transaction.
    pub txn_id: u128,
    /// Its primary key: the range holding it keeps the record.
    pub primary_key: Vec<u8>,
    /// The timestamp this range gave the write when preparing it; the
    /// commit timestamp is at least this.
    pub prepare_ts: Timestamp,
    /// The value written, or the lock.
    pub payload: Payload,
}

fn corrupt(what: &str) -> crate::error::KvError {
    StorageError::Corrupt(format!("intent: {what}")).into()
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if bytes.len() < n {
        return Err(corrupt("truncated"));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

fn take_u64(bytes: &mut &[u8]) -> Result<u64> {
    let raw: [u8; 8] = take(bytes, 8)?.try_into().map_err(|_| corrupt("u64"))?;
    Ok(u64::from_be_bytes(raw))
}

impl Intent {
    /// Whether this is a lock intent.
    pub fn is_lock(&self) -> bool {
        matches!(self.payload, Payload::Lock(_))
    }

    /// The value a committed write intent becomes (`None`: a delete or a
    /// lock, which leaves no version).
    pub fn written(&self) -> Option<Option<&[u8]>> {
        match &self.payload {
            Payload::Write(value) => Some(value.as_deref()),
            Payload::Lock(_) => None,
        }
    }

    /// Stored form: id, prepare ts, primary key length + bytes, then `0`
    /// (a delete), `1` + the value, or `2` + a lock holder's tag.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40 + self.primary_key.len());
        out.extend_from_slice(&self.txn_id.to_be_bytes());
        out.extend_from_slice(&self.prepare_ts.to_be_bytes());
        out.extend_from_slice(&(self.primary_key.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.primary_key);
        match &self.payload {
            Payload::Write(None) => out.push(0),
            Payload::Write(Some(v)) => {
                out.push(1);
                out.extend_from_slice(v);
            }
            Payload::Lock(holder) => {
                out.push(2);
                out.extend_from_slice(holder);
            }
        }
        out
    }

    /// The transaction id and prepare timestamp of an encoded intent,
    /// without copying the rest: for scans that pass many intents by.
    pub fn peek(bytes: &[u8]) -> Result<(u128, Timestamp)> {
        let mut rest = bytes;
        let id: [u8; 16] = take(&mut rest, 16)?.try_into().map_err(|_| corrupt("id"))?;
        Ok((u128::from_be_bytes(id), take_u64(&mut rest)?))
    }

    /// Parses [`Intent::encode`]'s output.
    pub fn decode(mut bytes: &[u8]) -> Result<Intent> {
        let bytes = &mut bytes;
        let id: [u8; 16] = take(bytes, 16)?.try_into().map_err(|_| corrupt("id"))?;
        let prepare_ts = take_u64(bytes)?;
        let len: [u8; 4] = take(bytes, 4)?.try_into().map_err(|_| corrupt("length"))?;
        let primary_key = take(bytes, u32::from_be_bytes(len) as usize)?.to_vec();
        let payload = match take(bytes, 1)? {
            [0] if bytes.is_empty() => Payload::Write(None),
            [1] => Payload::Write(Some(bytes.to_vec())),
            [2] => Payload::Lock(bytes.to_vec()),
            _ => return Err(corrupt("value tag")),
        };
        Ok(Intent {
            txn_id: u128::from_be_bytes(id),
            primary_key,
            prepare_ts,
            payload,
        })
    }
}

/// Where a transaction stands, as its record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    /// Undecided; may be aborted by anyone after `expiry` (wall µs).
    Pending {
        /// When its coordinator is presumed dead.
        expiry: u64,
    },
    /// Committed at this timestamp.
    Committed(Timestamp),
    /// Aborted (at this wall-clock time, for GC).
    Aborted(u64),
    /// Committed at this timestamp, and every intent resolved: no intent
    /// will ask for the record again, so GC may drop it once the
    /// timestamp is below the GC threshold.
    Finished(Timestamp),
}

impl TxnStatus {
    /// Stored form: a tag and a `u64`.
    pub fn encode(self) -> [u8; 9] {
        let (tag, n) = match self {
            TxnStatus::Pending { expiry } => (0, expiry),
            TxnStatus::Committed(ts) => (1, ts),
            TxnStatus::Aborted(at) => (2, at),
            TxnStatus::Finished(ts) => (3, ts),
        };
        let mut out = [0u8; 9];
        out[0] = tag;
        out[1..].copy_from_slice(&n.to_be_bytes());
        out
    }

    /// Parses [`TxnStatus::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<TxnStatus> {
        let mut rest = bytes;
        let tag = take(&mut rest, 1)?[0];
        let n = take_u64(&mut rest)?;
        match tag {
            0 => Ok(TxnStatus::Pending { expiry: n }),
            1 => Ok(TxnStatus::Committed(n)),
            2 => Ok(TxnStatus::Aborted(n)),
            3 => Ok(TxnStatus::Finished(n)),
            _ => Err(corrupt("status tag")),
        }
    }

    /// Whether the transaction is decided.
    pub fn is_final(self) -> bool {
        !matches!(self, TxnStatus::Pending { .. })
    }

    /// The commit timestamp of a committed transaction.
    pub fn committed_at(self) -> Option<Timestamp> {
        match self {
            TxnStatus::Committed(ts) | TxnStatus::Finished(ts) => Some(ts),
            _ => None,
        }
    }
}

/// The range-local kind of transaction records.
pub(crate) const RECORD_KIND: u8 = b'x';

/// The key of transaction `txn_id`'s record in `range`.
pub fn record_key(range: u64, txn_id: u128) -> Vec<u8> {
    let mut key = keys::range_local_key(range, RECORD_KIND);
    key.extend_from_slice(&txn_id.to_be_bytes());
    key
}

/// The prefix of `range`'s transaction records.
pub fn record_prefix(range: u64) -> Vec<u8> {
    keys::range_local_key(range, RECORD_KIND)
}

/// The key of the marker saying part `part` of transaction `txn_id`
/// prepared in `range`.
pub fn prepared_key(range: u64, txn_id: u128, part: u32) -> Vec<u8> {
    let mut key = keys::range_local_key(range, b'p');
    key.extend_from_slice(&txn_id.to_be_bytes());
    key.extend_from_slice(&part.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn intents_and_statuses_round_trip() {
        for payload in [
            Payload::Write(None),
            Payload::Write(Some(Vec::new())),
            Payload::Write(Some(b"v\x00".to_vec())),
            Payload::Lock(b"holder".to_vec()),
            Payload::Lock(Vec::new()),
        ] {
            let intent = Intent {
                txn_id: u128::MAX - 5,
                primary_key: b"\x02pk".to_vec(),
                prepare_ts: 77,
                payload,
            };
            assert_eq!(Intent::decode(&intent.encode()).unwrap(), intent);
            assert_eq!(Intent::peek(&intent.encode()).unwrap(), (u128::MAX - 5, 77));
        }
        assert!(Intent::decode(&[0; 10]).is_err());
        assert!(Intent::peek(&[0; 20]).is_err());
        for status in [
            TxnStatus::Pending { expiry: 9 },
            TxnStatus::Committed(10),
            TxnStatus::Aborted(11),
        ] {
            assert_eq!(TxnStatus::decode(&status.encode()).unwrap(), status);
        }
        assert!(TxnStatus::decode(&[7; 9]).is_err());
        let key = intent_key(b"a\x00b");
        assert_eq!(intent_user_key(&key).unwrap(), b"a\x00b");
        let (lo, hi) = intent_span(b"a", Some(b"b"));
        assert!(lo <= key && key < hi);
    }
}
